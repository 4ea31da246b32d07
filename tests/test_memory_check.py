"""The memory check before any worker starts counts the engine's real KV cache (read from the GGUF header)."""

from __future__ import annotations

from conftest import run_cli

from radbatch.heads.gguf_meta import kv_cell_bytes
from radbatch.heads.models import ModelSpec, embedded_path
from radbatch.annotation.plan import kv_streams, worker_memory
from radbatch.annotation.settings import Settings


def test_kv_cell_bytes_come_from_the_gguf_header():
    # SmolLM2-135M: 30 layers x 3 KV heads x (64 + 64) dims x 2 bytes
    assert kv_cell_bytes(embedded_path()) == 30 * 3 * 128 * 2
    assert kv_cell_bytes(__file__) is None           # not a GGUF: the caller's allowance applies


def test_the_batched_engine_is_charged_for_each_of_its_kv_streams():
    model = ModelSpec(name="m", path=str(embedded_path()), adapter=None, chat_template="chatml", context_size=2048,
                      profile="radbatch", licence="Apache-2.0", thinking=False, description="")
    simple, batched = worker_memory([model], "simple"), worker_memory([model], "batched")
    kv = model.context_size * kv_cell_bytes(embedded_path())
    assert kv_streams("batched") == 22 and batched - simple == 21 * kv
    assert kv_streams("batched", Settings.from_env({"RADBATCH_BATCHED": "n_parallel=8"}).batch) == 14
    # kv_cells caps every stream (rounded up to 256 cells): the check counts the cap, not the context
    capped = worker_memory([model], "batched", Settings.from_env({"RADBATCH_BATCHED": "kv_cells=1000"}).batch)
    assert batched - capped == 22 * (model.context_size - 1024) * kv_cell_bytes(embedded_path())


def test_a_batch_that_cannot_fit_is_refused_before_work_and_a_bad_setting_is_a_usage_error(reports_parquet,
                                                                                            tmp_path):
    out = tmp_path / "out.parquet"
    res = run_cli("annotate", reports_parquet, "-o", out, "--tasks", "m_staging", "--model", "smollm2-ft-a", "-q",
                  env={"RADBATCH_BATCHED": "n_parallel=400000"})
    assert res.returncode == 3, res.stderr
    assert "need about" in res.stderr and "n_parallel" in res.stderr and not out.exists()
    res = run_cli("annotate", reports_parquet, "-o", out, "--tasks", "m_staging", "--model", "smollm2-ft-a", "-q",
                  env={"RADBATCH_BATCHED": "n_paralel=8"})
    assert res.returncode == 2 and "Known: n_parallel" in res.stderr and "Traceback" not in res.stderr
