"""Reliability round 2 (issue 13, items 3, 4, 8, 12): hung workers, engines that raise, inputs edited in place,
--retry-errors on a big output without loading it.

Hung and raising workers are real worker processes on the embedded model, put in that state by the test-only
hook `pool.crash_if_asked` (RADBATCH_TEST_CRASH_UNIT): `stop` is a real SIGSTOP of the worker, `spin` a loop that
burns CPU without a decode step, `raise` a RuntimeError where the engine runs. The watchdog's limits are made
small through its settings (RADBATCH_WATCHDOG) so the tests finish fast; nothing asserts on time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO, write_reports

MARKER = "QZX7731"
# m_staging pinned to an LLM member: the default routing sends it to the rules member, which loads no model
FAST = ["--tasks", "m_staging", "--model", "smollm2-ft-a", "--workers", "1", "--threads", "1", "-q"]
WATCH = "stopped_s=2,spin_cpu_s=2,poll_s=0.2"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "RADBATCH_PART_ROWS": "8", "RADBATCH_TEST_CRASH_UNIT": "",
       "RADBATCH_WATCHDOG": WATCH}
SHORT = ["CT CAP. Hepatic lesions, the largest {n} mm, compatible with metastases.",
         "CT chest. Solid nodule {n} mm in the right upper lobe. No adenopathy.",
         "PET-CT. Lytic lesion in L{k} with uptake. Impression: osseous metastasis.",
         "CT abdomen. No focal liver lesion. Adrenals normal. No metastatic disease."]


def texts(n: int) -> list[str]:
    return [SHORT[i % 4].format(n=4 + i % 23, k=1 + i % 5) + f" Ref {MARKER}-{i:03d}." for i in range(n)]


def run(src: Path, out: Path, *extra: str, env: dict | None = None, tasks=FAST) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "radbatch", "annotate", str(src), "-o", str(out), *tasks, *extra],
                         capture_output=True, text=True, cwd=REPO, env={**ENV, **(env or {})}, timeout=600)
    for s in (res.stdout, res.stderr):
        assert MARKER not in s and "Traceback" not in s, s[-3000:]
    return res


# -- item 3: hung workers ----------------------------------------------------------------------------------------

def test_a_sigstopped_worker_is_killed_and_its_unit_retried(tmp_path):
    """The worker stops itself (SIGSTOP) on its first try of unit 0:8; its CPU time stops growing, the pool kills
    it with SIGKILL, a fresh worker redoes the unit, and the run finishes with every row."""
    src = write_reports(tmp_path / "in.parquet", texts=texts(24))
    flag = tmp_path / "stopped"
    res = run(src, tmp_path / "o.parquet", env={"RADBATCH_TEST_CRASH_UNIT": f"0:8;stop;once={flag}"},
              tasks=FAST[:-1])
    assert res.returncode == 0, res.stderr
    assert flag.exists()   # the worker did stop
    assert len(re.findall(r"radbatch: worker \d+ hung on unit 0:8; killing it \(SIGKILL\)", res.stderr)) == 1
    df = pl.read_parquet(tmp_path / "o.parquet")
    assert df["source_row"].to_list() == list(range(24))
    assert set(df["m_staging__status"]) == {"ok"} and df["m_staging__error"].null_count() == 24
    assert "rows: ok 24" in res.stdout


def test_kill_stop_of_the_worker_from_outside_is_survived(tmp_path):
    """`kill -STOP <worker pid>` from outside, after the first part landed (the worker holds or is about to get
    the next unit): killed, the unit retried, every row `ok`."""
    from test_faults import parts_of, pool_workers, wait_until
    src = write_reports(tmp_path / "in.parquet", texts=texts(40))
    out, err = tmp_path / "o.parquet", tmp_path / "err.txt"
    cmd = [sys.executable, "-m", "radbatch", "annotate", str(src), "-o", str(out), *FAST[:-1]]
    with open(err, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=fh, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: (parts_of(out) and pool_workers(proc.pid)) or proc.poll() is not None)
        stopped = pool_workers(proc.pid) if proc.poll() is None else []
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        assert proc.wait(timeout=600) == 0, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert stopped, "the run finished before a worker could be stopped"
    log = err.read_text()
    assert MARKER not in log and "Traceback" not in log
    assert f"radbatch: worker {stopped[0]} hung on unit" in log
    df = pl.read_parquet(out)
    assert df["source_row"].to_list() == list(range(40)) and set(df["m_staging__status"]) == {"ok"}


def test_a_worker_spinning_without_decode_steps_is_killed_then_its_unit_fails_naming_it(tmp_path):
    """A native-loop stand-in: the worker burns CPU on unit 0:8 and never bumps its decode-step counter (a
    heartbeat would keep beating here). Each try is killed; after 3 the unit's rows fail with a message naming the
    unit, like a worker that dies, and the run goes on (exit 0). Without -q the kill is announced."""
    src = write_reports(tmp_path / "in.parquet", texts=texts(16))
    res = run(src, tmp_path / "o.parquet", env={"RADBATCH_TEST_CRASH_UNIT": "0:8;spin"},
              tasks=FAST[:-1])
    assert res.returncode == 0, res.stderr
    df = pl.read_parquet(tmp_path / "o.parquet")
    assert df["source_row"].to_list() == list(range(16))
    assert df.head(8)["m_staging__status"].to_list() == ["ok"] * 8
    bad = df.slice(8)
    assert bad["status"].to_list() == ["failed"] * 8
    (error,) = set(bad["m_staging__error"])
    assert re.fullmatch(r"worker hung on unit 0:8 \(\d+ CPU-seconds without a decode step: stuck in a loop\); "
                        r"killed it 3 times", error), error
    assert len(re.findall(r"radbatch: worker \d+ hung on unit 0:8; killing it \(SIGKILL\)", res.stderr)) == 3


def test_a_worker_hung_while_loading_is_exit_3(tmp_path):
    src = write_reports(tmp_path / "in.parquet", texts=texts(8))
    res = run(src, tmp_path / "o.parquet", env={"RADBATCH_TEST_CRASH_UNIT": "load;stop"})
    assert res.returncode == 3, res.stderr
    assert "Error: A worker hung while loading its model(s) (no CPU time for 2 s: stopped or blocked) and was " \
           "killed" in res.stderr


def test_watchdog_settings_are_checked():
    from radbatch.executors.pool import Watchdog
    assert Watchdog.from_env() == Watchdog()   # generous defaults: 30 CPU-minutes, 10 minutes without CPU
    os.environ["RADBATCH_WATCHDOG"] = "stopped_s=5,poll_s=0.5"
    try:
        assert Watchdog.from_env() == Watchdog(stopped_s=5, poll_s=0.5)
        for bad in ("stoped_s=5", "stopped_s=x", "stopped_s=0"):
            os.environ["RADBATCH_WATCHDOG"] = bad
            with pytest.raises(ValueError, match="RADBATCH_WATCHDOG"):
                Watchdog.from_env()
    finally:
        del os.environ["RADBATCH_WATCHDOG"]


# -- item 4: an engine that raises -------------------------------------------------------------------------------

def test_an_engine_raising_on_every_unit_stops_the_run_with_exit_3(tmp_path):
    src = write_reports(tmp_path / "in.parquet", texts=texts(40))
    res = run(src, tmp_path / "o.parquet", env={"RADBATCH_TEST_CRASH_UNIT": "0:0,0:8,0:16,0:24,0:32;raise"})
    assert res.returncode == 3, res.stderr
    assert re.search(r"Error: The engine raised RuntimeError on 3 units in a row \(last: unit 0:\d+\): the model, "
                     r"adapter or engine is broken", res.stderr), res.stderr
    assert not (tmp_path / "o.parquet").exists()


@pytest.fixture
def pool_spec():
    from radbatch.engines.spec import WorkerSpec
    from radbatch.heads.models import ModelSpec, embedded_path
    return WorkerSpec({"smollm2": ModelSpec("smollm2", str(embedded_path()), None, "chatml", 512, "radbatch", "")},
                      {}, 1)


def test_one_raising_unit_fails_alone(pool_spec):
    """A unit whose engine raises once between good units fails with the exception's type and is not retried;
    the run goes on (the broken-engine stop needs 3 in a row)."""
    from radbatch.executors.pool import Pool
    pool = Pool(replace(pool_spec, test_faults="u1,u3;raise"), 1, {"smollm2"})
    pool.start()
    try:
        outcomes = {o.unit: o for o in pool.run((f"u{i}", f"u{i}", []) for i in range(5))}
    finally:
        pool.close()
    assert {u for u, o in outcomes.items() if o.completions == []} == {"u0", "u2", "u4"}
    assert outcomes["u1"].failure == outcomes["u3"].failure == "engine error: RuntimeError: test fault"


# -- item 8: input identity by content ---------------------------------------------------------------------------

def _edit_in_place(path: Path, old: bytes, new: bytes) -> None:
    """Overwrite bytes in place (same size), then put the mtime back as it was."""
    st = path.stat()
    data = path.read_bytes()
    assert len(old) == len(new) and data.count(old) == 1
    with open(path, "r+b") as fh:
        fh.seek(data.index(old))
        fh.write(new)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def test_an_input_edited_in_place_with_its_mtime_restored_is_not_resumed(tmp_path):
    src = write_reports(tmp_path / "in.csv", texts=texts(16), fmt="csv")
    out = tmp_path / "o.parquet"
    env = {"RADBATCH_CACHE": str(tmp_path / "cache")}
    none = ["--tasks", "none", "-q"]
    assert run(src, out, env=env, tasks=none).returncode == 0
    os.utime(src)   # a touch alone changes nothing the run depends on
    res = run(src, out, env=env, tasks=none)
    assert res.returncode == 0 and "Nothing to do" in res.stdout, res.stdout + res.stderr
    _edit_in_place(src, f"{MARKER}-005".encode(), f"{MARKER}-905".encode())
    res = run(src, out, env=env, tasks=none)
    assert res.returncode == 4, res.stdout + res.stderr
    assert "holds the output of another run" in res.stderr
    res = run(src, out, "--restart", env=env, tasks=none)
    assert res.returncode == 0, res.stderr
    assert pl.read_parquet(out)["report_text"][5].endswith(f"{MARKER}-905.")


def test_content_hashes_are_cached_by_stat_and_an_edit_misses_the_cache(tmp_path, monkeypatch):
    from radbatch.archive import fingerprint
    monkeypatch.setenv("RADBATCH_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "a.csv"
    src.write_bytes(b"report_id,report_text\nA,lungs clear\n")
    hashed = []
    real = fingerprint.hash_file
    monkeypatch.setattr(fingerprint, "hash_file", lambda p: hashed.append(p) or real(p))
    first = fingerprint.content_hashes([str(src)])
    assert fingerprint.content_hashes([str(src)]) == first and len(hashed) == 1   # the resume reads the cache
    _edit_in_place(src, b"clear", b"clean")
    second = fingerprint.content_hashes([str(src)])
    assert len(hashed) == 2 and second != first


# -- item 12: --retry-errors streams the output ------------------------------------------------------------------

def test_retry_errors_writes_the_kept_rows_back_in_bounded_parts_of_whole_units(tmp_path, monkeypatch):
    """A finished output of 200 rows with errors in units 0:8 and 0:152 (the output is built here, with the real
    run key, so no model runs): the kept 184 rows come back as parts of at most 32 rows (plus the unit that
    straddles the bound), each holding whole units, with the rows and types of the output."""
    from radbatch.annotation import retry
    from radbatch.annotation.output import RunStore
    from radbatch.annotation.plan import AnnotateOptions, build_plan
    monkeypatch.setenv("RADBATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(retry, "PART_ROWS", 32, raising=False)
    monkeypatch.setattr(retry, "BATCH_ROWS", 50, raising=False)
    src = write_reports(tmp_path / "in.parquet", texts=texts(200))
    out = tmp_path / "o.parquet"
    plan = build_plan(AnnotateOptions((str(src),), str(out), tasks="m_staging"))
    n = 200
    status = ["error" if r // 8 in (1, 19) and r % 3 == 0 else "ok" for r in range(n)]
    table = pa.table({"report_id": [f"R{i:04d}" for i in range(n)], "report_text": texts(n),
                      "question": [None] * n, "source_file": [str(src)] * n,
                      "source_row": pa.array(range(n), pa.int64()),
                      "status": ["partial" if s == "error" else "ok" for s in status],
                      "m_staging__stage": ["M0" if s == "ok" else None for s in status],
                      "m_staging__status": status, "m_staging__error": [None if s == "ok" else "x" for s in status],
                      "id_duplicated": [False] * n}).replace_schema_metadata({"radbatch": '{"run_key": "k"}'})
    pq.write_table(table, out, row_group_size=64)
    store = RunStore(str(out))
    store.begin(plan.run_key, {}, False)
    assert retry.reopen_with_errors_removed(store, plan) == 2
    parts = store.done_units()
    assert sorted(parts, key=lambda u: int(u.split(":")[1])) == [f"0:{u}" for u in range(0, n, 8) if u not in (8, 152)]
    back = [pq.read_table(p) for p in sorted(set(parts.values()))]
    assert max(t.num_rows for t in back) <= 32 + 8
    for t in back:
        rows = t.column("source_row").to_pylist()
        assert rows == sorted({u + i for u in {r // 8 * 8 for r in rows} for i in range(8)})   # whole units
        assert t.column_names == ["report_id", "report_text", "question", "_source_index", "source_file",
                                  "source_row", "status", "m_staging__stage", "m_staging__status", "m_staging__error"]
        assert t.schema.field("_source_index").type == pa.int32()
    kept = pa.concat_tables(back).sort_by("source_row").drop_columns(["_source_index"])
    expect = table.drop_columns(["id_duplicated"]).filter(pa.array([r // 8 not in (1, 19) for r in range(n)]))
    assert kept.replace_schema_metadata(None).equals(expect.replace_schema_metadata(None))
    # A reopen interrupted and run again does not write the units already back a second time.
    assert retry.reopen_with_errors_removed(store, plan) == 2
    assert sorted(store.parts.glob("part-*.parquet")) == sorted(set(parts.values()))


def test_ray_read_tasks_read_priors_by_row_range_as_the_forward_cursor(tmp_path):
    """The Ray driver no longer holds every pending unit's priors; a read task reads its units' priors from
    priors.parquet, skipping row groups by their statistics. Same priors as the local executor's cursor."""
    pytest.importorskip("ray")
    from radbatch.archive.priors import PriorCursor
    from radbatch.executors.ray_data import UnitPriors
    keys = [(f, r) for f in (0, 1, 2) for r in range(0, 60) if (r * 7 + f) % 3]
    path = tmp_path / "priors.parquet"
    pq.write_table(pa.table({"file": pa.array([k[0] for k in keys], pa.int32()),
                             "row": pa.array([k[1] for k in keys], pa.int64()),
                             "prior": [f"prior {f}/{r}" for f, r in keys]}), path, row_group_size=5)
    for f in (0, 1, 2):
        for first in (0, 8, 24, 48):
            local = PriorCursor(path)
            mine = UnitPriors(str(path), f, first, 60)
            for start in range(first, 60, 8):
                assert mine.take(start, 8) == local.take(f, start, 8)
    assert UnitPriors(None, 0, 0, 8).take(0, 8) == {}
