"""The base model of a finetune: which file it is, how its prompts are rendered, and loading it into transformers.

A base is `embedded`, a model name in recipes/models.toml, a GGUF file (llama / qwen2 / qwen3 architecture),
or a Hugging Face model folder. A GGUF is dequantized into transformers once and kept as a Hugging Face
folder in the cache (`$RADBATCH_CACHE/hf-from-gguf/<sha256>`): the GGUF loader parses the whole vocabulary in
Python, which costs tens of seconds per load. Nothing here touches the network (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from radbatch.errors import InputError
from radbatch.heads.models import (
    EMBEDDED,
    ModelSpec,
    check_gguf,
    embedded_path,
    load_models,
    sha256_file,
)

GGUF_ARCHITECTURES = ("llama", "qwen2", "qwen3")  # what transformers can load from a GGUF and llama.cpp runs
END_OF_TURN = "<|im_end|>"


@dataclass(frozen=True)
class Base:
    label: str            # as the user named it
    kind: str             # gguf | hf
    path: str             # the GGUF file, or the Hugging Face folder
    sha256: str | None    # of the GGUF annotate loads (None for a Hugging Face folder)
    spec: ModelSpec       # chat template, profile, thinking: how annotate renders this model's prompts

    @property
    def display(self) -> str:
        """`embedded (SmolLM2-135M-Instruct.Q4_1.gguf)`, `qwen3 (Qwen3-4B-f16.gguf)`, or the file name."""
        name = Path(self.path).name
        return name if Path(self.label).expanduser().exists() else f"{self.label} ({name})"


def cache_root() -> Path:
    return Path(os.environ.get("RADBATCH_CACHE", Path.home() / ".cache" / "radbatch"))


def go_offline() -> None:
    """Before transformers is imported: never reach the Hub (no downloads, no telemetry)."""
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        os.environ[key] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def quiet_transformers() -> None:
    """No download / conversion progress bars and warnings in the training log."""
    import warnings

    import transformers
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.|peft\.")
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def resolve_base(value: str, models_file: Path | None = None, profile: str = "radbatch") -> Base:
    """--base VALUE -> Base. A models.toml name brings its profile / chat template / thinking flag."""
    spec, label = None, value
    if value != EMBEDDED and not Path(value).exists():
        from radbatch.heads.recipes import load_recipes
        recipes = load_recipes()
        known = load_models(models_file or recipes.root / "models.toml", set(recipes.profiles))
        if value not in known:
            raise InputError(f"--base {value!r} is not 'embedded', a model in the models file (known: "
                             f"{', '.join(known)}), a .gguf file or a Hugging Face model folder (with config.json)")
        spec = known[value]
        if spec.is_rules:
            raise InputError(f"--base {value!r} is a rules member (no model to fine-tune)")
        if spec.adapter:
            raise InputError(f"model {value!r} already has an adapter ({spec.adapter}); finetune its base model "
                             f"({spec.path}) instead")
        value = spec.path
    path = embedded_path() if value == EMBEDDED else Path(value).expanduser().resolve()
    name = spec.name if spec else (EMBEDDED if value == EMBEDDED else path.stem)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(f"--base folder {path} has no config.json; give a Hugging Face model folder or a .gguf")
        kind, sha = "hf", None
    else:
        check_gguf(str(path), "base model")
        _check_architecture(path)
        kind, sha = "gguf", sha256_file(str(path))
    spec = spec or ModelSpec(name, str(path), None, "chatml", 2048, profile, "unknown")
    return Base(label, kind, str(path), sha, spec)


def _check_architecture(path: Path) -> None:
    from gguf import GGUFReader
    field = GGUFReader(path).get_field("general.architecture")
    arch = field.contents() if field is not None else None
    if arch not in GGUF_ARCHITECTURES:
        raise InputError(f"base model {path} has architecture {arch!r}; finetuning from a GGUF supports "
                         f"{', '.join(GGUF_ARCHITECTURES)} (or give a Hugging Face model folder)")


def hf_folder(base: Base) -> Path:
    """A Hugging Face folder for the base: the folder itself, or the cached dequantized copy of the GGUF."""
    if base.kind == "hf":
        return Path(base.path)
    out = cache_root() / "hf-from-gguf" / base.sha256[:24]
    if (out / ".complete").exists():
        return out
    go_offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer
    quiet_transformers()
    path = Path(base.path)
    os.environ["TQDM_DISABLE"] = "1"      # the GGUF loader's own progress bars
    try:
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
    finally:
        os.environ.pop("TQDM_DISABLE", None)
    model.hf_quantizer = None                 # dequantized weights: save them as plain tensors
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.architectures = [type(model).__name__]   # llama.cpp's converters read it
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / ".complete").write_text(f"{base.path}\n{base.sha256}\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def load_tokenizer(folder: Path):
    go_offline()
    from transformers import AutoTokenizer
    quiet_transformers()
    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


def load_model(folder: Path):
    go_offline()
    import torch
    from transformers import AutoModelForCausalLM
    quiet_transformers()
    return AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
