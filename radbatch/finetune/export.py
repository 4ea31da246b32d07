"""Export: a peft LoRA adapter -> a GGUF LoRA adapter llama.cpp loads, stamped with its base model's sha256.

The conversion is llama.cpp's own convert_lora_to_gguf.py (and convert_hf_to_gguf.py for a merged model), taken
from the llama-cpp-python sdist of the installed version and unpacked once into
`$RADBATCH_CACHE/llama.cpp-tools/<version>/`. The sdist is looked for at $RADBATCH_LLAMA_SDIST, then in
`$RADBATCH_CACHE/sdist/` (where `make setup` puts it), then fetched there with `pip download` once.
The converters run in a subprocess: they import their own gguf-py, which must not replace the `gguf` package here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from radbatch.errors import EngineError

from .base import cache_root

TOOL_FILES = ("convert_lora_to_gguf.py", "convert_hf_to_gguf.py")
TOOL_DIRS = ("conversion/", "gguf-py/")
QUANT_TYPES = {"q4_0": 2, "q4_1": 3, "q5_0": 8, "q5_1": 9, "q8_0": 7, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}


def llama_version() -> str:
    from importlib.metadata import version
    return version("llama_cpp_python")


def sdist_path(version: str) -> Path:
    name = f"llama_cpp_python-{version}.tar.gz"
    env = os.environ.get("RADBATCH_LLAMA_SDIST")
    if env:
        if not Path(env).is_file():
            raise EngineError(f"RADBATCH_LLAMA_SDIST={env} is not a file")
        return Path(env)
    folder = cache_root() / "sdist"
    if (folder / name).is_file():
        return folder / name
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d", str(folder),
           f"llama-cpp-python=={version}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not (folder / name).is_file():
        raise EngineError(f"llama.cpp's GGUF converters come from the llama-cpp-python {version} sdist, which is not "
                          f"in {folder} and could not be downloaded. Run `{' '.join(cmd)}` where PyPI is reachable, "
                          "or set RADBATCH_LLAMA_SDIST to the .tar.gz.")
    return folder / name


def llama_tools() -> Path:
    """The folder holding llama.cpp's converters for the installed llama-cpp-python."""
    version = llama_version()
    out = cache_root() / "llama.cpp-tools" / version
    if (out / ".complete").exists():
        return out
    sdist = sdist_path(version)
    prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            rel = member.name[len(prefix):] if member.name.startswith(prefix) else None
            if rel and member.isfile() and (rel in TOOL_FILES or rel.startswith(TOOL_DIRS)):
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    if not all((tmp / f).is_file() for f in TOOL_FILES):
        raise EngineError(f"{sdist} does not hold llama.cpp's {', '.join(TOOL_FILES)}")
    (tmp / ".complete").write_text(str(sdist))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def _run_tool(script: str, args: list[str], log: Path) -> None:
    """Run one of llama.cpp's converters (in its own folder: give absolute paths)."""
    tools = llama_tools()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(tools)}
    env.pop("NO_LOCAL_GGUF", None)
    with log.open("a") as fh:
        done = subprocess.run([sys.executable, str(tools / script), *args], cwd=tools, env=env, stdout=fh,
                              stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise EngineError(f"llama.cpp's {script} failed (exit {done.returncode}); its output is in {log}")


def convert_adapter(peft_dir: Path, base_folder: Path, out: Path, metadata: dict, log: Path,
                    outtype: str = "f16") -> Path:
    """peft folder -> GGUF LoRA adapter at `out`, with radbatch.* metadata (base sha256, recipe, steps...)."""
    peft_dir, base_folder, out = Path(peft_dir).resolve(), Path(base_folder).resolve(), Path(out).resolve()
    tmp = out.with_name(out.name + ".convert.tmp")
    _run_tool("convert_lora_to_gguf.py", ["--base", str(base_folder), "--outfile", str(tmp), "--outtype", outtype,
                                          str(peft_dir)], log)
    add_metadata(tmp, out, metadata)
    tmp.unlink()
    return out


def add_metadata(src: Path, dst: Path, metadata: dict) -> None:
    """Copy a GGUF with extra string / int / float keys (GGUF headers cannot be edited in place)."""
    import gguf
    reader = gguf.GGUFReader(src)
    arch = reader.get_field("general.architecture").contents()
    tmp = dst.with_name(dst.name + ".meta.tmp")
    writer = gguf.GGUFWriter(tmp, arch=arch, endianess=reader.endianess)
    for f in reader.fields.values():
        if f.name == "general.architecture" or f.name.startswith("GGUF.") or f.name in metadata:
            continue
        sub = f.types[-1] if f.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(f.name, f.contents(), f.types[0], sub_type=sub)
    for key, value in metadata.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            value = str(value)
        kind = (gguf.GGUFValueType.STRING if isinstance(value, str) else
                gguf.GGUFValueType.INT64 if isinstance(value, int) else gguf.GGUFValueType.FLOAT32)
        writer.add_key_value(key, value, kind)
    for t in reader.tensors:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in reader.tensors:
        writer.write_tensor_data(t.data)
    writer.close()
    os.replace(tmp, dst)


def verify_adapter(base_gguf: str, adapter: Path, probe: list[int], threads: int = 2) -> float:
    """Load base and base + adapter in llama.cpp, run the probe tokens, return the largest logit change.

    Fails when llama.cpp refuses the adapter or the adapter changes nothing (an export that lost its weights)."""
    import numpy as np
    from llama_cpp import Llama

    logits = []
    for lora in (None, str(adapter)):
        kwargs = dict(model_path=base_gguf, n_ctx=max(256, len(probe) + 8), n_threads=threads, verbose=False,
                      logits_all=True, seed=0)
        if lora:
            kwargs["lora_path"] = lora
        try:
            llm = Llama(**kwargs)
        except (ValueError, RuntimeError) as exc:
            raise EngineError(f"llama.cpp cannot load {adapter} on {base_gguf}: {exc}") from None
        if lora and not llm._lora_adapter:
            llm._lora_adapter = None
            raise EngineError(f"llama.cpp refused the adapter {adapter} for {base_gguf}")
        llm.eval(probe)
        logits.append(np.array(llm.scores[:len(probe)], dtype=np.float32))
        llm.close()
    change = float(np.abs(logits[0] - logits[1]).max())
    if not change > 1e-4:
        raise EngineError(f"the exported adapter {adapter} does not change the base model's logits "
                          f"(largest change {change:g}); the export lost the LoRA weights")
    return change


def export_merged(peft_dir: Path, base_folder: Path, out: Path, quant: str, log: Path) -> Path:
    """Base + LoRA merged, converted to GGUF f16, then quantized by llama.cpp (e.g. q4_k_m, RadLite's deployment)."""
    import llama_cpp
    from peft import PeftModel

    from .base import load_model, load_tokenizer
    if quant not in QUANT_TYPES and quant not in ("f16", "f32"):
        raise EngineError(f"unknown quantization {quant!r}. Known: f16, f32, {', '.join(QUANT_TYPES)}")
    peft_dir, base_folder, out = Path(peft_dir).resolve(), Path(base_folder).resolve(), Path(out).resolve()
    work = out.with_name(out.name + ".merge.tmp")
    shutil.rmtree(work, ignore_errors=True)
    model = PeftModel.from_pretrained(load_model(base_folder), peft_dir).merge_and_unload()
    model.save_pretrained(work / "hf")
    load_tokenizer(base_folder).save_pretrained(work / "hf")
    f16 = work / "merged-f16.gguf"
    _run_tool("convert_hf_to_gguf.py", [str(work / "hf"), "--outfile", str(f16),
                                        "--outtype", "f32" if quant == "f32" else "f16"], log)
    if quant in ("f16", "f32"):
        os.replace(f16, out)
    else:
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = QUANT_TYPES[quant]
        params.nthread = os.cpu_count() or 1
        if llama_cpp.llama_model_quantize(str(f16).encode(), str(out).encode(), params) != 0:
            raise EngineError(f"llama.cpp could not quantize the merged model to {quant}")
    shutil.rmtree(work, ignore_errors=True)
    return out
