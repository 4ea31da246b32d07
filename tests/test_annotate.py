"""annotate end to end on the real embedded model, real Parquet/CSV files and real worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from radbatch.heads.recipes import load_recipes
from radbatch.heads.tasks import HeadInstance
from conftest import REPO, REPORTS, run_cli, write_reports

HEAD_STATUSES = {"ok", "error", "not_applicable", "truncated"}
ROW_STATUSES = {"ok", "partial", "failed", "empty_text", "bad_text"}


@pytest.fixture(scope="module")
def all_heads_run(tmp_path_factory):
    """All nine heads on 8 rows: 6 reports, a null and an empty text, one duplicated id."""
    tmp = tmp_path_factory.mktemp("e2e")
    texts = REPORTS[:6] + [None, "  "]
    ids = ["A", "B", "C", "D", "E", "A", "G", "H"]
    src = write_reports(tmp / "in.parquet", texts=texts, ids=ids)
    out = tmp / "out.parquet"
    res = run_cli("annotate", src, "-o", out, "--question-column", "question", "--workers", "1", "--threads", "2")
    return src, out, res


def test_all_nine_heads_every_row_once_with_declared_types(all_heads_run):
    src, out, res = all_heads_run
    assert res.returncode == 0, res.stderr
    table = pq.read_table(out)
    assert table.num_rows == 8
    assert table.column("source_row").to_pylist() == list(range(8))
    assert table.column("report_id").to_pylist() == ["A", "B", "C", "D", "E", "A", "G", "H"]
    schema = table.schema
    for recipe in load_recipes().tasks.values():
        for field in HeadInstance(recipe).output_fields():
            assert schema.field(field.name).type == field.type, field.name
        statuses = set(table.column(f"{recipe.id}__status").to_pylist())
        assert statuses <= HEAD_STATUSES, (recipe.id, statuses)
    assert set(table.column("status").to_pylist()) <= ROW_STATUSES
    assert table.column("status").to_pylist()[6:] == ["empty_text", "empty_text"]
    assert table.column("id_duplicated").to_pylist() == [True, False, False, False, False, True, False, False]
    # Reports with text: every head that applies produced a value or a reason, from its routed model.
    df = pl.from_arrow(table)
    routing = tomllib.loads((REPO / "recipes" / "routing.toml").read_text())
    for recipe in load_recipes().tasks.values():
        ok_rows = df.filter(pl.col(f"{recipe.id}__status") == "ok")
        assert ok_rows[f"{recipe.id}__model"].to_list() == [routing["routes"][recipe.id]] * ok_rows.height
        bad = df.filter(pl.col(f"{recipe.id}__status").is_in(["error", "truncated", "not_applicable"]))
        assert bad[f"{recipe.id}__error"].null_count() == 0
    assert df.filter(pl.col("m_staging__status") == "ok")["m_staging__stage"].is_in(["M0", "M1"]).all()
    meta = json.loads(pq.ParquetFile(out).metadata.metadata[b"radbatch"])
    assert set(meta) >= {"radbatch_version", "run_key", "recipes", "models", "routing", "options"}
    for name in set(routing["routes"].values()):
        assert len(meta["models"][name]["sha256"]) == 64
    assert "Wrote 8 rows" in res.stdout and "rads_assignment" in res.stdout
    # annotate says whether the routing is measured on a dev split or not
    assert ("PROVISIONAL" in res.stderr) == (routing["status"] == "provisional")
    assert ("measured on a dev split" in res.stderr) == (routing["status"] == "measured")


def test_summary_and_logs_hold_no_report_text(all_heads_run):
    _, _, res = all_heads_run
    for phrase in ("pleural effusion, increased", "hypodense hepatic", "fibroglandular"):
        assert phrase not in res.stdout and phrase not in res.stderr


def test_rerun_of_a_complete_output_does_nothing(all_heads_run):
    src, out, _ = all_heads_run
    before = out.stat().st_mtime_ns
    res = run_cli("annotate", src, "-o", out, "--question-column", "question")
    assert res.returncode == 0, res.stderr
    assert "Nothing to do" in res.stdout
    assert out.stat().st_mtime_ns == before


def test_other_run_key_is_refused_then_restart(all_heads_run, tmp_path):
    src, out, _ = all_heads_run
    res = run_cli("annotate", src, "-o", out, "--tasks", "m_staging")
    assert res.returncode == 4
    assert "another run" in res.stderr and "--restart" in res.stderr
    copy = tmp_path / "o.parquet"
    copy.write_bytes(out.read_bytes())
    res = run_cli("annotate", src, "-o", copy, "--tasks", "m_staging", "--restart", "-q")
    assert res.returncode == 0, res.stderr
    assert "m_staging__stage" in pq.read_schema(copy).names
    assert "rads_assignment__status" not in pq.read_schema(copy).names


def _table(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path)


def test_same_output_with_one_and_two_workers(tmp_path):
    src = write_reports(tmp_path / "in.parquet", n=16)
    heads = "m_staging,radiology_nli,rads_assignment"
    r1 = run_cli("annotate", src, "-o", tmp_path / "w1.parquet", "--tasks", heads, "--workers", "1", "--threads", "2", "-q")
    r2 = run_cli("annotate", src, "-o", tmp_path / "w2.parquet", "--tasks", heads, "--workers", "2", "--threads", "1", "-q")
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    assert _table(tmp_path / "w1.parquet").equals(_table(tmp_path / "w2.parquet"))


def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path):
    src = write_reports(tmp_path / "in.parquet", n=48)
    args = [sys.executable, "-m", "radbatch", "annotate", str(src), "-o", str(tmp_path / "k.parquet"),
            "--tasks", "m_staging", "--model", "smollm2-ft-a", "--workers", "1", "--threads", "2", "-q"]
    env = {**os.environ, "RADBATCH_PART_ROWS": "8"}
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = tmp_path / "k.parquet.radbatch" / "parts"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(parts.glob("part-*.parquet"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "run finished before it could be killed; enlarge the fixture"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = len(list(parts.glob("part-*.parquet")))
    assert 0 < saved < 6 and not (tmp_path / "k.parquet").exists()
    res = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    computed = int(res.stdout.split("(")[1].split(" computed")[0])
    assert computed <= 48 - 8 * saved  # finished units were not recomputed
    clean = run_cli("annotate", src, "-o", tmp_path / "clean.parquet", "--tasks", "m_staging", "--model",
                    "smollm2-ft-a", "-q")
    assert clean.returncode == 0
    assert _table(tmp_path / "k.parquet").equals(_table(tmp_path / "clean.parquet"))
    again = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "Nothing to do" in again.stdout


def test_retry_errors_recomputes_only_failed_units(tmp_path):
    """A report too long for a small context errors on its row; --retry-errors redoes only its unit."""
    models = tmp_path / "models.toml"
    models.write_text('[models.smollm2]\npath = "embedded"\ncontext_size = 512\n')
    texts = [REPORTS[i % 8] for i in range(16)]
    texts[11] = "FINDINGS: " + "The lungs are clear. " * 150
    src = write_reports(tmp_path / "in.parquet", texts=texts)
    out = tmp_path / "o.parquet"
    args = ["annotate", src, "-o", out, "--tasks", "m_staging", "--models-file", models, "--model", "smollm2"]
    res = run_cli(*args, "-q")
    assert res.returncode == 0, res.stderr
    df = _table(out)
    assert df["m_staging__status"].to_list()[11] == "error"
    assert "context" in df["m_staging__error"].to_list()[11]
    assert df["status"].to_list()[11] == "failed"
    res = run_cli(*args, "--retry-errors", "-q")
    assert res.returncode == 0, res.stderr
    assert "(8 computed this run)" in res.stdout
    assert _table(out).equals(df)
    res = run_cli(*args, "--fail-on-row-errors", "-q")
    assert res.returncode == 1
