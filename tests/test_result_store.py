"""The per-row result store (`--cache DIR`, radbatch/annotation/result_store.py), with real llama.cpp runs on the embedded
model and tiny archives written here.

A rerun over a grown archive, or with one head's recipe changed, sends the engines only the requests the store
has not seen (RunSummary.decoded_requests counts what the driver hands the engines; reused_results what the store
answered) and its output is the same Arrow table, metadata included, as a run without the store. On the base
model that holds for every head. With an adapter a long generation may differ at a near-tie, because the batched
engine's batches differ when some heads are answered from the store (docs/performance.md "Agreement"), so there
only the short-answer heads are compared.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import radbatch
from conftest import REPO, REPORTS, run_cli, write_reports

SHORT = "m_staging,radiology_nli"
HEADS = SHORT + ",impression_generation"


def annotate(src: Path, out: Path, tasks: str = HEADS, model: str = "smollm2", **options):
    got = []
    radbatch.annotate(str(src), str(out), tasks=tasks, model=model, on_summary=got.append, **options)
    return got[0]


def table(path: Path):
    return pq.read_table(path)


def requests_of(summary) -> int:
    return sum(c["ok"] + c["error"] + c["truncated"] for c in summary.head_counts.values())


def test_grown_archive_and_changed_recipe_decode_only_unseen_keys_and_equal_a_scratch_run(tmp_path, monkeypatch):
    """Base model, three heads (one long-answer): 4 rows, then the archive grown to 6, then one head's recipe
    changed. Each rerun decodes exactly the new keys and writes what a run without the store writes."""
    cache = tmp_path / "cache"
    small = write_reports(tmp_path / "a.parquet", 4)
    grown = write_reports(tmp_path / "b.parquet", 6)   # the same 4 reports, then 2 more
    first = annotate(small, tmp_path / "o1.parquet", cache=str(cache))
    assert first.reused_results == 0 and first.decoded_requests == requests_of(first) == 12
    assert os.stat(cache).st_mode & 0o777 == 0o700
    assert {p.name: os.stat(p).st_mode & 0o777 for p in cache.iterdir()} == {"results.sqlite": 0o600}

    rerun = annotate(grown, tmp_path / "o2.parquet", cache=str(cache))
    assert (rerun.reused_results, rerun.decoded_requests) == (12, 6)   # 4 rows x 3 heads stored; 2 new rows
    scratch = annotate(grown, tmp_path / "o3.parquet")
    assert scratch.decoded_requests == 18 and scratch.reused_results == 0
    assert table(tmp_path / "o2.parquet").equals(table(tmp_path / "o3.parquet"), check_metadata=True)

    recipes = tmp_path / "recipes"
    shutil.copytree(REPO / "recipes", recipes)
    nli = recipes / "tasks" / "radiology_nli.toml"
    nli.write_text(nli.read_text().replace("or neither? Answer", "or neither?  Answer", 1))
    monkeypatch.setenv("RADBATCH_RECIPES", str(recipes))
    changed = annotate(grown, tmp_path / "o4.parquet", cache=str(cache))
    assert (changed.reused_results, changed.decoded_requests) == (12, 6)   # only radiology_nli, 6 rows
    annotate(grown, tmp_path / "o5.parquet")
    assert table(tmp_path / "o4.parquet").equals(table(tmp_path / "o5.parquet"), check_metadata=True)

    again = annotate(grown, tmp_path / "o6.parquet", cache=str(cache))   # a new output, every key seen
    assert (again.reused_results, again.decoded_requests) == (18, 0)
    assert table(tmp_path / "o6.parquet").equals(table(tmp_path / "o5.parquet"), check_metadata=True)


def test_with_an_adapter_short_answer_heads_equal_a_scratch_run(tmp_path):
    """smollm2-ft-a: the batched engine decodes other batches when part of a unit comes from the store, and a
    long generation may then differ at a near-tie (docs/performance.md "Agreement"); short answers may not."""
    cache = tmp_path / "cache"
    annotate(write_reports(tmp_path / "a.parquet", 4), tmp_path / "o1.parquet", model="smollm2-ft-a",
             cache=str(cache))
    grown = write_reports(tmp_path / "b.parquet", 7)
    rerun = annotate(grown, tmp_path / "o2.parquet", model="smollm2-ft-a", cache=str(cache))
    assert (rerun.reused_results, rerun.decoded_requests) == (12, 9)
    annotate(grown, tmp_path / "o3.parquet", model="smollm2-ft-a")
    a, b = table(tmp_path / "o2.parquet"), table(tmp_path / "o3.parquet")
    short = [c for c in a.column_names if c.split("__")[0] in SHORT.split(",")]
    assert len(short) >= 8 and a.select(short).equals(b.select(short))
    assert a.num_rows == b.num_rows == 7   # impression_generation (long answers): not compared, see above


def _values(db: Path) -> list[tuple[bytes, bytes]]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT key, value FROM results ORDER BY key").fetchall()


def test_corrupt_and_mismatched_entries_are_ignored_and_recomputed(tmp_path):
    """A flipped byte (checksum) and an entry stored under another key (key check): both are decoded again,
    overwritten, and the output equals a scratch run."""
    cache, src = tmp_path / "cache", write_reports(tmp_path / "a.parquet", 3)
    annotate(src, tmp_path / "o1.parquet", tasks="m_staging", cache=str(cache))
    db = cache / "results.sqlite"
    (k0, v0), (k1, _), (k2, _) = _values(db)
    flipped = bytearray(v0)
    flipped[-5] ^= 0x01
    with sqlite3.connect(db) as con:
        con.execute("UPDATE results SET value=? WHERE key=?", (bytes(flipped), k0))
        con.execute("UPDATE results SET value=? WHERE key=?", (v0, k1))   # valid checksum, wrong key
    again = annotate(src, tmp_path / "o2.parquet", tasks="m_staging", cache=str(cache))
    assert (again.rejected_results, again.decoded_requests, again.reused_results) == (2, 2, 1)
    assert table(tmp_path / "o2.parquet").equals(table(tmp_path / "o1.parquet"), check_metadata=False)
    assert {k for k, _ in _values(db)} == {k0, k1, k2}
    third = annotate(src, tmp_path / "o3.parquet", tasks="m_staging", cache=str(cache))
    assert (third.rejected_results, third.reused_results) == (0, 3)


def test_a_store_that_is_not_a_database_or_open_to_others_is_refused_with_a_fix(tmp_path):
    src = write_reports(tmp_path / "a.parquet", 2)
    bad = tmp_path / "bad"
    bad.mkdir(mode=0o700)
    (bad / "results.sqlite").write_bytes(b"not a database at all " * 100)
    res = run_cli("annotate", src, "-o", tmp_path / "o.parquet", "--tasks", "m_staging", "--model", "smollm2",
                  "--cache", bad, "-q")
    assert res.returncode == 4, res.stderr
    assert f"Error: the result store {bad}/results.sqlite cannot be used (file is not a database). Erase it with " \
           f"`radbatch cache erase {bad}`" in res.stderr
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o755)
    res = run_cli("annotate", src, "-o", tmp_path / "o.parquet", "--tasks", "m_staging", "--model", "smollm2",
                  "--cache", open_dir, "-q")
    assert res.returncode == 2 and "is open to other users (mode 755)" in res.stderr and "chmod 700" in res.stderr
    assert not (tmp_path / "o.parquet").exists()


def test_erase_one_archive_prune_and_erase_all_leave_no_generated_text_on_disk(tmp_path):
    cache = tmp_path / "cache"
    a = write_reports(tmp_path / "a.parquet", texts=REPORTS[:2])
    b = write_reports(tmp_path / "b.parquet", texts=REPORTS[2:4])
    annotate(a, tmp_path / "oa.parquet", tasks="impression_generation", cache=str(cache))
    annotate(b, tmp_path / "ob.parquet", tasks="impression_generation", cache=str(cache))
    texts = {row: [json.dumps(t, ensure_ascii=False)[1:-1].encode() for t in   # as stored: JSON-escaped
                   table(tmp_path / f"o{row}.parquet").column("impression_generation__text").to_pylist() if t]
             for row in ("a", "b")}
    texts["a"] = [t for t in texts["a"] if t not in texts["b"]]
    assert texts["a"] and texts["b"]
    raw = b"".join(p.read_bytes() for p in cache.glob("results.sqlite*"))
    assert all(t in raw for t in texts["a"] + texts["b"]), (texts, sorted(p.name for p in cache.iterdir()))
    res = run_cli("cache", "erase", cache, "--archive", a)
    assert res.returncode == 0 and res.stdout.startswith(f"Erased 2 entries of {a} (sha256 "), res.stderr
    raw = b"".join(p.read_bytes() for p in cache.glob("results.sqlite*"))
    assert not any(t in raw for t in texts["a"]), texts     # overwritten, not only unlinked
    assert all(t in raw for t in texts["b"]), texts
    res = run_cli("cache", "info", cache)
    assert res.returncode == 0 and ": 2 entries from 1 input file(s)" in res.stdout, res.stdout + res.stderr
    res = run_cli("cache", "prune", cache, "--older-than", "1")
    assert res.stdout.startswith("Deleted 0 entries"), res.stdout + res.stderr
    res = run_cli("cache", "prune", cache, "--older-than", "0")
    assert res.returncode == 0 and res.stdout.startswith("Deleted 2 entries not used in 0 days")
    res = run_cli("cache", "erase", cache)
    assert res.returncode == 0 and not list(cache.glob("results.sqlite*"))
    res = run_cli("cache", "info", cache)
    assert res.returncode == 2 and "holds no result store" in res.stderr


def test_resume_after_sigkill_uses_the_parts_and_the_store(tmp_path):
    """The driver is killed once the store holds a unit; the rerun skips units in parts, takes units that were
    stored but not yet in a part from the store, decodes the rest, and equals an uninterrupted run."""
    src = write_reports(tmp_path / "in.parquet", texts=[f"{REPORTS[i % 8]} Ref {i}." for i in range(24)])
    out, cache = tmp_path / "k.parquet", tmp_path / "cache"
    cmd = [sys.executable, "-m", "radbatch", "annotate", str(src), "-o", str(out), "--tasks", "m_staging",
           "--model", "smollm2-ft-a", "--cache", str(cache), "--workers", "1", "-q"]
    env = {**os.environ, "RADBATCH_PART_ROWS": "16"}   # two 8-row units per part
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stored() -> int:
        try:
            with sqlite3.connect(f"file:{cache / 'results.sqlite'}?mode=ro", uri=True) as con:
                return con.execute("SELECT count(*) FROM results").fetchone()[0]
        except sqlite3.Error:
            return 0
    while proc.poll() is None and stored() < 8:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(60)
    entries = stored()
    in_parts = sum(pq.read_metadata(p).num_rows for p in (Path(str(out) + ".radbatch") / "parts").glob("*.parquet"))
    assert 8 <= entries < 24 and in_parts <= entries, (entries, in_parts)
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert f"result store: {entries - in_parts} head results reused, {24 - entries} decoded" in res.stdout
    annotate(src, tmp_path / "ref.parquet", tasks="m_staging", model="smollm2-ft-a")
    assert table(out).equals(table(tmp_path / "ref.parquet"), check_metadata=False)


def test_the_key_covers_the_runs_own_batched_engine_settings(tmp_path, monkeypatch):
    """Results decoded under other RADBATCH_BATCHED settings are other keys (batch make-up can move a long
    generation at a near-tie); the same settings give the same keys. Planning only: no model is loaded."""
    from radbatch.annotation.plan import build_plan
    from radbatch.annotation.result_store import KeyFacts
    src = write_reports(tmp_path / "in.parquet", 2)

    def slots(batched: str | None) -> dict:
        if batched is None:
            monkeypatch.delenv("RADBATCH_BATCHED", raising=False)
        else:
            monkeypatch.setenv("RADBATCH_BATCHED", batched)
        opts = radbatch.api.annotate_options([str(src)], str(tmp_path / "o.parquet"), tasks=HEADS, model="smollm2")
        return KeyFacts(build_plan(opts)).slot

    default = slots(None)
    assert slots(None) == default and set(default) == set(HEADS.split(","))
    other = slots("n_parallel=4")
    assert all(other[k] != default[k] for k in default)
