"""Process and storage faults, each injected for real: SIGKILL of the main process at random points and resume,
workers killed (externally, by themselves, in native code, while loading), read-only and full file systems, a
file-size limit, a conflicting output, truncated parts. Every run's stdout and stderr is checked for report text.

Real processes on the embedded model, m_staging only, small archives; parts are flushed per 8-row unit
(RADBATCH_PART_ROWS=8). File-system faults use small tmpfs mounts and are skipped where mounting is not allowed.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from conftest import REPO, write_reports

MARKER = "QZX7731"  # in every report: must never appear in a message, log line or traceback
N_ROWS = 40
# m_staging pinned to an LLM member: the default routing sends it to the rules member, which loads no model
FAST = ["--tasks", "m_staging", "--model", "smollm2-ft-a", "--workers", "1", "--threads", "1", "-q"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "RADBATCH_PART_ROWS": "8", "RADBATCH_TEST_CRASH_UNIT": ""}


SHORT = ["CT CAP. Hepatic lesions, the largest {n} mm, compatible with metastases.",
         "CT chest. Solid nodule {n} mm in the right upper lobe. No adenopathy.",
         "PET-CT. Lytic lesion in L{k} with uptake. Impression: osseous metastasis.",
         "CT abdomen. No focal liver lesion. Adrenals normal. No metastatic disease."]


def report_texts(n: int) -> list[str]:
    """Short (fast) and all different, each with the marker."""
    return [SHORT[i % 4].format(n=4 + i % 23, k=1 + i % 5) + f" Ref {MARKER}-{i:03d}." for i in range(n)]


def annotate_cmd(src: Path, out: Path, *extra: str, quiet: bool = True) -> list[str]:
    return [sys.executable, "-m", "radbatch", "annotate", str(src), "-o", str(out), *FAST[:-1],
            *(["-q"] if quiet else []), *extra]


def assert_no_report_text(*streams: str) -> None:
    for s in streams:
        assert MARKER not in s, s[-2000:]
        assert "Traceback" not in s, s[-4000:]


def run(src: Path, out: Path, *extra: str, env: dict | None = None, quiet: bool = True,
        **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(annotate_cmd(src, out, *extra, quiet=quiet), capture_output=True, text=True, cwd=REPO,
                         env={**ENV, **(env or {})}, timeout=600, **kw)
    assert_no_report_text(res.stdout, res.stderr)
    return res


def computed(res: subprocess.CompletedProcess) -> int:
    return int(res.stdout.split("(")[1].split(" computed")[0])


def parts_of(out: Path) -> list[Path]:
    return sorted((Path(str(out) + ".radbatch") / "parts").glob("part-*.parquet"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The input (40 rows, 5 units) and its uninterrupted output (with the progress bar and start lines on)."""
    tmp = tmp_path_factory.mktemp("faults")
    src = write_reports(tmp / "in.parquet", texts=report_texts(N_ROWS))
    res = run(src, tmp / "ref.parquet", quiet=False)
    assert res.returncode == 0, res.stderr
    assert "radbatch: 1 input file(s), 1 head(s)" in res.stderr and "Wrote 40 rows" in res.stdout
    return src, pl.read_parquet(tmp / "ref.parquet")


# -- process faults ---------------------------------------------------------------------------------------------

def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def pool_workers(pid: int) -> list[int]:
    """The pool's worker processes (spawned children; not the multiprocessing resource tracker)."""
    found = []
    for c in children(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes():
                found.append(c)
        except OSError:
            pass
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(cond, timeout: float = 300, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False


def test_main_process_killed_at_random_points_then_resumed_equals_uninterrupted_run(reference, tmp_path):
    """Five SIGKILLs of the main process and one Ctrl-C, then a clean rerun; the result is identical to the
    uninterrupted run. Points: early start-up, model loading, a random number of new parts plus a random delay,
    and the moment the last part lands (finalize)."""
    src, ref = reference
    out = tmp_path / "k.parquet"
    rng = random.Random(int(os.environ.get("RADBATCH_FAULT_SEED", "20260508")))  # vary it for a longer campaign
    points = [("kill", "time", rng.uniform(0.3, 1.5)), ("kill", "time", rng.uniform(2.5, 5.0)),
              ("kill", "new", 1), ("kill", "new", rng.choice([1, 2])), ("int", "new", 1),
              ("kill", "total", N_ROWS // 8)]
    log = []
    for sig, trigger, arg in points:
        err = tmp_path / f"err-{len(log)}.txt"
        base = len(parts_of(out))
        with open(err, "w") as fh:
            proc = subprocess.Popen(annotate_cmd(src, out), cwd=REPO, env=ENV, stdout=fh, stderr=subprocess.STDOUT)
        workers: set[int] = set()

        def reached() -> bool:
            workers.update(pool_workers(proc.pid))
            n = len(parts_of(out))
            return proc.poll() is not None or (n - base >= arg if trigger == "new" else n >= arg)

        if trigger == "time":
            wait_until(lambda: proc.poll() is not None or (workers.update(pool_workers(proc.pid)), False)[1], arg)
        else:
            wait_until(reached)
            time.sleep(rng.uniform(0, 0.5) if trigger == "new" else 0)
        workers.update(pool_workers(proc.pid))
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT if sig == "int" else signal.SIGKILL)
        code = proc.wait(timeout=120)
        # Orphaned workers notice that the supervisor is gone and exit (after at most their current unit).
        assert wait_until(lambda: not any(map(alive, workers)), timeout=120), "orphaned workers kept running"
        text = err.read_text()
        assert_no_report_text(text)
        log.append((sig, trigger, arg, code, len(parts_of(out)), out.exists()))
        if sig == "int" and code != 0:
            assert code == 130 and "Rerun the same command to resume" in text, text
        if out.exists():  # a final file is there only when complete, never half-written
            assert pl.read_parquet(out).equals(ref)
    print("\n".join(map(str, log)))  # (signal, trigger, argument, exit code, parts after, final file exists)
    assert sum(code == -signal.SIGKILL for *_, code, _, _ in log) >= 4, log
    res = run(src, out)
    assert res.returncode == 0, res.stderr
    assert pl.read_parquet(out).equals(ref), log
    assert not list(tmp_path.glob(".k.parquet*")) and not parts_of(out)
    again = run(src, out)
    assert again.returncode == 0 and "Nothing to do" in again.stdout


def test_ctrl_c_while_planning_is_exit_130_without_a_traceback(reference, tmp_path):
    src, _ = reference
    proc = subprocess.Popen(annotate_cmd(src, tmp_path / "o.parquet"), cwd=REPO, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Wait until the command body runs (the CLI module is imported and the click command is parsed).
    time.sleep(1.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert_no_report_text(stdout, stderr)
    assert proc.returncode in (0, 130), stderr
    if proc.returncode == 130:
        assert "Rerun the same command to resume" in stderr


def test_worker_killed_on_a_unit_is_retried_then_its_rows_fail_and_retry_errors_survives_a_native_crash(
        reference, tmp_path):
    """The worker SIGKILLs itself on every try of unit 0:8: three tries, then its rows fail with the reason and
    the run finishes. --retry-errors then meets one SIGSEGV in native code on that unit, retries, and succeeds."""
    src, ref = reference
    out = tmp_path / "o.parquet"
    res = run(src, out, "--limit", "16", env={"RADBATCH_TEST_CRASH_UNIT": "0:8"})
    assert res.returncode == 0, res.stderr
    df = pl.read_parquet(out)
    assert df["source_row"].to_list() == list(range(16))
    bad = df.slice(8)
    assert bad["status"].to_list() == ["failed"] * 8
    assert bad["m_staging__status"].to_list() == ["error"] * 8
    assert set(bad["m_staging__error"]) == {"worker died (signal 9) on this unit 3 times"}
    assert bad["m_staging__stage"].null_count() == 8
    assert df.head(8).equals(ref.head(8))
    assert "rows: ok 8, failed 8" in res.stdout
    # Row errors are data: exit 1 only when asked (here on the finished output: nothing is recomputed).
    res = run(src, out, "--limit", "16", "--fail-on-row-errors")
    assert res.returncode == 1 and "Nothing to do" in res.stdout
    crashed = tmp_path / "crashed"
    res = run(src, out, "--limit", "16", "--retry-errors",
              env={"RADBATCH_TEST_CRASH_UNIT": f"0:8;segv;once={crashed}"})
    assert res.returncode == 0, res.stderr
    assert crashed.exists()  # the native crash did happen
    assert computed(res) == 8
    assert pl.read_parquet(out).equals(ref.head(16))


def test_external_sigkill_of_the_worker_pid_is_survived(reference, tmp_path):
    src, ref = reference
    out = tmp_path / "o.parquet"
    err = tmp_path / "err.txt"
    with open(err, "w") as fh:
        proc = subprocess.Popen(annotate_cmd(src, out, "--limit", "16"), cwd=REPO, env=ENV, stdout=fh,
                                stderr=subprocess.STDOUT)
    killed = []
    # Kill the worker mid-unit, right after the first part lands.
    for parts in (1,):
        assert wait_until(lambda: len(parts_of(out)) >= parts and pool_workers(proc.pid) or proc.poll() is not None)
        if proc.poll() is not None:
            break
        time.sleep(0.3)
        for pid in pool_workers(proc.pid):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    assert proc.wait(timeout=600) == 0, err.read_text()
    assert killed, "the run finished before a worker could be killed"
    assert_no_report_text(err.read_text())
    assert pl.read_parquet(out).equals(ref.head(16))
    assert not any(map(alive, killed))


# The pool itself, in process, on empty units (no decoding): faults between units.

@pytest.fixture
def pool_spec():
    from radbatch.engines.spec import WorkerSpec
    from radbatch.heads.models import ModelSpec, embedded_path
    return WorkerSpec({"smollm2": ModelSpec("smollm2", str(embedded_path()), None, "chatml", 512, "radbatch", "")},
                      {}, 1)


def test_pool_replaces_a_worker_killed_while_idle(pool_spec):
    from radbatch.executors.pool import Pool
    pool = Pool(pool_spec, 1, {"smollm2"})
    pool.start()
    try:
        first = pool.workers[0].proc.pid
        os.kill(first, signal.SIGKILL)
        assert wait_until(lambda: not alive(first), timeout=30)
        outcomes = list(pool.run((f"u{i}", f"u{i}", []) for i in range(3)))
        assert sorted(o.unit for o in outcomes) == ["u0", "u1", "u2"]
        assert all(o.completions == [] and not o.failure for o in outcomes)
        assert pool.workers[0].proc.pid != first and pool.workers[0].proc.is_alive()
    finally:
        pool.close()


def test_pool_gives_up_on_a_unit_after_bounded_attempts(pool_spec):
    from radbatch.executors.pool import Pool
    pool = Pool(replace(pool_spec, test_faults="u1"), 1, {"smollm2"}, max_attempts=2)
    pool.start()
    try:
        outcomes = {o.unit: o for o in pool.run((f"u{i}", f"u{i}", []) for i in range(3))}
        assert set(outcomes) == {"u0", "u1", "u2"}
        assert outcomes["u1"].completions is None
        assert outcomes["u1"].failure == "worker died (signal 9) on this unit 2 times"
        assert outcomes["u0"].completions == [] and outcomes["u2"].completions == []
    finally:
        pool.close()
    assert not pool.workers


def test_pool_stops_when_workers_die_on_unit_after_unit(pool_spec):
    """A broken engine is not a bad report: after 3 units given up in a row the pool raises EngineError (exit 3)
    instead of crash-looping through the archive."""
    from radbatch.errors import EngineError
    from radbatch.executors.pool import Pool
    pool = Pool(replace(pool_spec, test_faults="u0,u1,u2,u3;segv"), 1, {"smollm2"}, max_attempts=1)
    pool.start()
    seen = []
    with pytest.raises(EngineError, match=r"Workers died \(signal 11\) on 3 units in a row"):
        for o in pool.run((f"u{i}", f"u{i}", []) for i in range(5)):
            seen.append(o.unit)
    assert sorted(seen) == ["u0", "u1"] and not pool.workers


# -- storage faults ---------------------------------------------------------------------------------------------

@contextmanager
def tmpfs(path: Path, size: str = "8m", ro: bool = False):
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}" + (",ro" if ro else ""), "tmpfs", str(path)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip()}); storage faults need root in a mount-capable "
                    "container")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, opts: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{opts}", str(path)], check=True, capture_output=True)


def test_read_only_output_directory_is_exit_4_before_any_work(reference, tmp_path):
    src, _ = reference
    with tmpfs(tmp_path / "ro", ro=True) as ro:
        res = run(src, ro / "out.parquet")
        assert res.returncode == 4, res.stderr
        assert res.stderr.startswith(f"Error: cannot create the work directory {ro}/out.parquet.radbatch: "
                                     "Read-only file system.")
        assert "rerun the same command to resume" in res.stderr
        assert list(ro.iterdir()) == []


def test_output_directory_turning_read_only_before_the_final_write_keeps_parts_and_broken_parts_are_redone(
        reference, tmp_path):
    """The work directory is writable, the output directory is not (read-only remount): exit 4, no final file,
    all five parts kept. Then a crash-truncated part and an empty part (as left on a file system without atomic
    rename) are found by their footers and recomputed on resume; the three intact ones are reused. `--tasks none`:
    the bookkeeping is the same with or without heads, and this needs no model."""
    src, _ = reference
    assert run(src, tmp_path / "ref.parquet", "--tasks", "none").returncode == 0
    with tmpfs(tmp_path / "outdir") as d:
        out = d / "out.parquet"
        with tmpfs(Path(str(out) + ".radbatch")):
            remount(d, "ro")
            res = run(src, out, "--tasks", "none")
            assert res.returncode == 4, res.stderr
            assert res.stderr.startswith(f"Error: cannot write the final output {out}: ")
            assert "Read-only file system" in res.stderr and "Finished parts are kept" in res.stderr
            assert sorted(p.name for p in d.iterdir()) == ["out.parquet.radbatch"]
            parts = {pq.read_metadata(p).metadata[b"radbatch.units"]: p for p in parts_of(out)}
            assert len(parts) == N_ROWS // 8
            remount(d, "rw")
            data = parts[b'["0:8"]'].read_bytes()
            parts[b'["0:8"]'].write_bytes(data[: len(data) // 2])
            parts[b'["0:24"]'].write_bytes(b"")
            res = run(src, out, "--tasks", "none")
            assert res.returncode == 0, res.stderr
            assert computed(res) == 16
            assert pl.read_parquet(out).equals(pl.read_parquet(tmp_path / "ref.parquet"))


def test_disk_full_mid_run_is_exit_4_and_the_rerun_resumes(reference, tmp_path):
    """A 20 KiB tmpfs holds run.json and about two 8-row parts (~4 KiB each, 4 KiB pages): ENOSPC mid-run."""
    src, ref = reference
    with tmpfs(tmp_path / "small", size="20k") as d:
        out = d / "out.parquet"
        res = run(src, out, "--limit", "24")
        assert res.returncode == 4, res.stderr
        assert "No space left on device" in res.stderr and "Finished parts are kept" in res.stderr
        assert not out.exists() and not list(d.glob(".out.parquet*"))
        kept = len(parts_of(out))
        assert 0 < kept < 3
        assert not list((Path(str(out) + ".radbatch") / "parts").glob(".tmp-*"))  # no half-written part
        remount(d, "size=8m")
        res = run(src, out, "--limit", "24")
        assert res.returncode == 0, res.stderr
        assert computed(res) == 24 - 8 * kept
        assert pl.read_parquet(out).equals(ref.head(24))


def test_file_size_limit_is_exit_4_with_a_clear_message(reference, tmp_path):
    """RLIMIT_FSIZE in the child: writes past it fail with EFBIG (radbatch ignores SIGXFSZ)."""
    src, _ = reference

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    out = tmp_path / "o.parquet"
    res = subprocess.run([sys.executable, "-m", "radbatch", "annotate", str(src), "-o", str(out), "--tasks", "none",
                          "-q"], capture_output=True, text=True, cwd=REPO, env=ENV, preexec_fn=limit, timeout=300)
    assert_no_report_text(res.stdout, res.stderr)
    assert res.returncode == 4, res.stderr
    assert "File too large" in res.stderr and "Finished parts are kept" in res.stderr
    assert not out.exists()


def test_output_of_another_run_or_a_foreign_file_is_refused_with_exit_4(reference, tmp_path):
    src, _ = reference
    out = tmp_path / "o.parquet"
    assert run(src, out, "--tasks", "none", "--limit", "8").returncode == 0
    before = out.read_bytes()
    res = run(src, out, "--tasks", "none", "--limit", "16")
    assert res.returncode == 4
    assert f"Error: {out} holds the output of another run" in res.stderr and "--restart" in res.stderr
    assert out.read_bytes() == before
    foreign = tmp_path / "notes.parquet"
    foreign.write_text("not a radbatch output")
    res = run(src, foreign, "--tasks", "none")
    assert res.returncode == 4
    assert res.stderr == f"Error: {foreign} exists and is not a radbatch output. Choose another -o or remove it.\n"
    assert foreign.read_text() == "not a radbatch output"
