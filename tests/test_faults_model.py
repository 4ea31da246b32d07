"""Model faults, injected for real: truncated, corrupt, empty and non-GGUF model files, LoRA adapters for another
base, contexts too small for the prompt. Each is a clear error before any row is annotated (exit 3, or exit 2 for
an invalid models file), or a per-row error for one over-long report; never a crash that takes the job down.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from conftest import REPO, write_reports
from test_faults import MARKER, assert_no_report_text, report_texts

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "RADBATCH_TEST_CRASH_UNIT": ""}


@pytest.fixture(scope="module")
def base_model() -> Path:
    from radbatch.heads.models import embedded_path
    return embedded_path()


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    return write_reports(tmp_path_factory.mktemp("model") / "in.parquet", texts=report_texts(4))


def annotate(src: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "radbatch", "annotate", str(src), "-o", str(out), "--tasks",
                          "m_staging", "--model", "smollm2-ft-a", "--workers", "1", "--threads", "1", "-q",
                          *map(str, extra)],
                         capture_output=True, text=True, cwd=REPO, env=ENV, timeout=600)
    assert_no_report_text(res.stdout, res.stderr)
    return res


def with_model(tmp_path: Path, path: Path | str, **extra) -> list[str]:
    """--models-file with one model `m` at path (and extra keys), routed to every head."""
    models = tmp_path / "models.toml"
    lines = [f'[models.m]\npath = "{path}"'] + [f"{k} = {v}" for k, v in extra.items()]
    models.write_text("\n".join(lines) + "\n")
    return ["--models-file", str(models), "--model", "m"]


def assert_refused_before_work(res, out: Path, code: int, message: str) -> None:
    assert res.returncode == code, res.stdout + res.stderr
    assert res.stderr.startswith("Error: ") and message in res.stderr, res.stderr
    assert not out.exists()
    assert not list((Path(str(out) + ".radbatch") / "parts").glob("part-*"))  # no row was annotated


def test_truncated_gguf_is_exit_3(src, base_model, tmp_path):
    bad = tmp_path / "trunc.gguf"
    with open(base_model, "rb") as fh:
        bad.write_bytes(fh.read(1 << 20))  # the header and metadata, then the tensor data stops
    out = tmp_path / "o.parquet"
    res = annotate(src, out, *with_model(tmp_path, bad))
    assert_refused_before_work(res, out, 3, f"A worker could not load its model(s): ValueError: Failed to load "
                                            f"model from file: {bad}")


def test_corrupt_gguf_metadata_is_exit_3(src, base_model, tmp_path):
    """The real file with 2,000 random bytes over its metadata, and a 'GGUF' magic followed by noise."""
    flipped = tmp_path / "flipped.gguf"
    data = bytearray(base_model.read_bytes())
    data[24:2024] = os.urandom(2000)
    flipped.write_bytes(data)
    noise = tmp_path / "noise.gguf"
    noise.write_bytes(b"GGUF" + os.urandom(5000))
    for bad in (flipped, noise):
        out = tmp_path / f"{bad.stem}.parquet"
        res = annotate(src, out, *with_model(tmp_path, bad))
        assert_refused_before_work(res, out, 3, f"Failed to load model from file: {bad}")


@pytest.mark.parametrize("content", [b"", b"PAR1 this is a parquet file, not a model", b"\x00" * 64])
def test_non_gguf_model_file_is_exit_3_before_any_worker_starts(src, tmp_path, content):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(content)
    out = tmp_path / "o.parquet"
    res = annotate(src, out, *with_model(tmp_path, bad))
    assert_refused_before_work(res, out, 3, f"model 'm' file {bad} is not a GGUF file (it does not start with "
                                            "'GGUF'). Convert it with llama.cpp's convert_hf_to_gguf.py")
    assert not Path(str(out) + ".radbatch").exists()  # refused while planning


def test_missing_model_file_is_exit_3(src, tmp_path):
    out = tmp_path / "o.parquet"
    res = annotate(src, out, *with_model(tmp_path, tmp_path / "nowhere.gguf"))
    assert_refused_before_work(res, out, 3, f"model 'm' file not found: {tmp_path / 'nowhere.gguf'}")


def lora(path: Path, arch: str, width: int, **meta: str) -> Path:
    """A tiny LoRA adapter GGUF on blocks 0-1 attn_q (width x width), zero weights, with extra string keys."""
    import gguf   # a core dependency: never skipped on
    import numpy as np
    w = gguf.GGUFWriter(str(path), arch)
    w.add_type("adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", 16.0)
    for k, v in meta.items():
        w.add_string(k, v)
    for blk in range(2):
        w.add_tensor(f"blk.{blk}.attn_q.weight.lora_a", np.zeros((4, width), np.float32))
        w.add_tensor(f"blk.{blk}.attn_q.weight.lora_b", np.zeros((width, 4), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_adapter_for_another_base_is_exit_3_not_a_segfault_per_unit(src, tmp_path):
    """Without the check, llama-cpp-python 0.3.36 applies the NULL adapter llama.cpp returns for a mismatched
    LoRA, and every unit segfaults its worker (3 tries each): the job crash-loops through the archive."""
    cases = {
        "shapes": (lora(tmp_path / "shapes.gguf", "llama", 64), "llama.cpp refused the LoRA adapter"),
        "arch": (lora(tmp_path / "arch.gguf", "qwen2", 576), "llama.cpp refused the LoRA adapter"),
        # radbatch finetune records the base's sha256: a mismatch is refused while planning.
        "sha": (lora(tmp_path / "sha.gguf", "llama", 576, **{"radbatch.base_sha256": "0" * 64,
                                                               "radbatch.base_name": "SmolLM2-360M"}),
                "was trained on SmolLM2-360M"),
    }
    for name, (adapter, message) in cases.items():
        out = tmp_path / f"{name}.parquet"
        res = annotate(src, out, "--adapter", adapter)
        assert_refused_before_work(res, out, 3, message)


def test_model_file_given_as_adapter_is_exit_3(src, base_model, tmp_path):
    out = tmp_path / "o.parquet"
    res = annotate(src, out, "--adapter", base_model)
    assert_refused_before_work(res, out, 3, "is a GGUF model, not a LoRA adapter")


@pytest.mark.parametrize("value", ["16", "0", "-1", '"2048"', "true", "1.5"])
def test_context_size_that_cannot_hold_any_prompt_is_refused_up_front(src, tmp_path, value):
    out = tmp_path / "o.parquet"
    res = annotate(src, out, *with_model(tmp_path, "embedded", context_size=value))
    assert res.returncode == 2, res.stderr
    assert "context_size must be a whole number of tokens >= 256" in res.stderr
    assert not Path(str(out) + ".radbatch").exists()


def test_one_report_too_long_for_the_context_is_a_row_error(tmp_path):
    texts = report_texts(4)
    texts[2] = texts[2] + " The lungs are clear." * 80  # ~500 tokens: over a 256-token context
    src = write_reports(tmp_path / "in.parquet", texts=texts)
    out = tmp_path / "o.parquet"
    res = annotate(src, out, *with_model(tmp_path, "embedded", context_size=256))
    assert res.returncode == 0, res.stderr
    df = pl.read_parquet(out)
    assert df["status"].to_list() == ["ok", "ok", "failed", "ok"]
    err = df["m_staging__error"][2]
    assert err.startswith("prompt has ") and err.endswith("over the model context of 256: report too long "
                                                          "(raise context_size)")
    assert MARKER not in err
    res = annotate(src, out, *with_model(tmp_path, "embedded", context_size=256), "--fail-on-row-errors")
    assert res.returncode == 1


@pytest.mark.parametrize("how,code", [("load", -9), ("load;segv", -11)])
def test_worker_crashing_while_loading_is_a_clear_exit_3(src, tmp_path, how, code):
    out = tmp_path / "o.parquet"
    env = {**ENV, "RADBATCH_TEST_CRASH_UNIT": how}
    res = subprocess.run([sys.executable, "-m", "radbatch", "annotate", str(src), "-o", str(out), "--tasks",
                          "m_staging", "--model", "smollm2-ft-a", "--workers", "1", "--threads", "1", "-q"],
                         capture_output=True, text=True,
                         cwd=REPO, env=env, timeout=600)
    assert_no_report_text(res.stdout, res.stderr)
    assert_refused_before_work(res, out, 3, f"A worker died while loading its model(s) (exit code {code}); the "
                                            "GGUF or adapter file may be corrupt or truncated, or memory ran out.")
