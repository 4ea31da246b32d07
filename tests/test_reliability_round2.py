"""Reliability round 2 (issue 13, items 2, 5, 6, 7, 9, 10, 11): owner-only files and no report text left behind,
broken CSV quoting, directory outputs and --restart resumes, mixed id types, fsynced bookkeeping, no traceback
ever, empty CSV ids.

Every CLI run is a real subprocess of radbatch under umask 022 on real Parquet/CSV files. `--tasks none` runs the
input, part, resume and output machinery without a model; one test runs the temporal head on the real model (its
priors file is the report text radbatch copies for itself). Interruptions are injected where the resume hint is
printed: a KeyboardInterrupt raised in place of finalize, in a `python -c` wrapper around `radbatch.cli.main.main`
(no test hook in radbatch). Every report holds a marker that must never appear in stdout or stderr.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from conftest import REPO, REPORTS

MARKER = "QZX7731"
TEXTS = [f"{REPORTS[i % len(REPORTS)]} {MARKER}" for i in range(24)]

WRAPPER = """
import sys
{patch}
from radbatch.cli.main import main
main()
"""
STOP_AT_FINALIZE = """
import radbatch.annotation.pipeline
def _stop(*args, **kwargs):
    raise KeyboardInterrupt
radbatch.annotation.pipeline.finalize = _stop
"""


def radbatch(*args, patch: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    """`radbatch ARGS` in a subprocess under umask 022, optionally with a patch applied before main()."""
    cmd = [sys.executable, "-c", WRAPPER.format(patch=patch), *map(str, args)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600,
                         env={**os.environ, "PYTHONUNBUFFERED": "1", "RADBATCH_PART_ROWS": "8", **(env or {})},
                         preexec_fn=lambda: os.umask(0o022))
    for stream in (res.stdout, res.stderr):
        assert MARKER not in stream and "Traceback" not in stream, stream[-3000:]
    return res


def annotate(*args, patch: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    return radbatch("annotate", *args, "-q", patch=patch, env=env)


def computed(res: subprocess.CompletedProcess) -> int:
    return int(res.stdout.split("(")[1].split(" computed")[0])


def write_parquet(path: Path, n: int, ids=None, **extra) -> Path:
    ids = ids if ids is not None else [f"R{i:03d}" for i in range(n)]
    pq.write_table(pa.table({"report_id": ids, "report_text": TEXTS[:n], **extra}), path)
    return path


def write_csv(path: Path, n: int, first: int = 100) -> Path:
    lines = ["report_id,report_text"] + [f'S{first + i},"{TEXTS[i]}"' for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_owner_only(root: Path, skip: set[Path] = frozenset()) -> list[Path]:
    """Every file under root is 0600 and every folder 0700 (root included); returns what was checked."""
    seen = []
    for path in [root, *root.rglob("*")]:
        if path in skip:
            continue
        assert mode(path) == (0o700 if path.is_dir() else 0o600), (path, oct(mode(path)))
        seen.append(path)
    return seen


# -- item 2: owner-only files, report text copies removed, finalize's temp file in the work directory ------------

def test_files_radbatch_creates_are_owner_only_under_umask_022(tmp_path):
    """Parts, work directory, run.json (interrupted run), then the final outputs, in both output layouts, and the
    folders radbatch creates on the way; the inputs (written by the test under umask 022) stay as they were."""
    src = write_parquet(tmp_path / "in.parquet", 24)
    os.chmod(src, 0o644)
    out = tmp_path / "new" / "sub" / "out.parquet"
    res = annotate(src, "-o", out, "--tasks", "none", patch=STOP_AT_FINALIZE)
    assert res.returncode == 130 and "Rerun the same command to resume" in res.stderr, res.stderr
    work = Path(str(out) + ".radbatch")
    checked = assert_owner_only(tmp_path / "new")
    assert work / "run.json" in checked and len(list((work / "parts").glob("part-*.parquet"))) == 3
    res = annotate(src, "-o", out, "--tasks", "none")
    assert res.returncode == 0 and computed(res) == 0, res.stderr
    assert out in assert_owner_only(tmp_path / "new")
    assert mode(src) == 0o644

    d = tmp_path / "dirout"
    res = annotate(src, write_csv(tmp_path / "b.csv", 5), "-o", f"{d}/", "--tasks", "none")
    assert res.returncode == 0, res.stderr
    assert {p.name for p in assert_owner_only(d)} == {"dirout", "00000-in.parquet", "00001-b.parquet", "_radbatch",
                                                       "run.json"}


def test_sample_and_eval_outputs_are_owner_only_under_umask_022(tmp_path):
    from radbatch.evaluation.synthetic import write_synthetic
    res = radbatch("sample", "-n", "3", "-o", tmp_path / "made" / "s.parquet")
    assert res.returncode == 0, res.stderr
    assert_owner_only(tmp_path / "made")
    runs = write_synthetic(tmp_path / "synthetic", rows=16)
    res = radbatch("eval", runs["run_b"], "--gold", runs["gold"], "--json", tmp_path / "scores" / "m.json")
    assert res.returncode == 0, res.stderr
    assert len(assert_owner_only(tmp_path / "scores")) == 2


def test_finalize_temp_file_is_owner_only_inside_the_work_directory(tmp_path, monkeypatch):
    """A spy on the rename of the final file: its temp file is 0600 in the work directory, not beside the output
    (where a crash used to leave `.out.parquet.tmp` with report text, 0644, that nothing cleaned up)."""
    import radbatch.annotation.finalize
    from radbatch.cli.main import cli
    moves = []
    real = radbatch.annotation.finalize.move_into_place

    def spy(tmp, path):
        moves.append((Path(tmp), Path(path), mode(Path(tmp))))
        return real(tmp, path)

    monkeypatch.setattr(radbatch.annotation.finalize, "move_into_place", spy)
    old = os.umask(0o022)
    try:
        src, out = write_parquet(tmp_path / "in.parquet", 10), tmp_path / "out.parquet"
        res = CliRunner().invoke(cli, ["annotate", str(src), "-o", str(out), "--tasks", "none", "-q"])
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    [(tmp, final, tmp_mode)] = moves
    assert final == out and tmp.parent == Path(str(out) + ".radbatch") and tmp_mode == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.parquet", "out.parquet.radbatch"]


def test_priors_copy_is_owner_only_and_gone_when_the_run_completes(tmp_path):
    """The temporal head on the real model: priors.parquet (full prior report text) is 0600 while the run is
    unfinished and removed when it completes; the work directory keeps only run.json, and the same command then
    says nothing to do (that decision never needed the priors)."""
    src = write_parquet(tmp_path / "in.parquet", 3, patient_id=["P1", "P1", "P2"],
                        study_date=["2020-01-01", "2021-01-01", "2021-01-01"])
    out = tmp_path / "out.parquet"
    args = [src, "-o", out, "--tasks", "temporal_comparison", "--patient-column", "patient_id", "--date-column",
            "study_date", "--workers", "1", "--threads", "1"]
    res = annotate(*args, patch=STOP_AT_FINALIZE)
    assert res.returncode == 130, res.stderr
    work = Path(str(out) + ".radbatch")
    assert work / "priors.parquet" in assert_owner_only(work)
    res = annotate(*args)
    assert res.returncode == 0 and computed(res) == 0, res.stderr
    assert sorted(p.name for p in work.iterdir()) == ["run.json"] and pl.read_parquet(out).height == 3
    res = annotate(*args)
    assert res.returncode == 0 and "Nothing to do" in res.stdout, res.stdout + res.stderr


# -- item 5: broken CSV quoting --------------------------------------------------------------------------------

@pytest.mark.parametrize("body, line", [
    (f'B1,"Lungs clear {MARKER}.\nB2,Heart normal {MARKER}.\n', 2),                      # never closed
    (f'B1,"Lungs clear {MARKER}.\nB2,"Heart normal {MARKER}."\nB3,"Ok {MARKER}"\n', 2),  # closes on the next quote
    (f'B0,"fine"\r\nB1,ok "5 mm" {MARKER}\r\nB2,"say ""hi"" {MARKER}\r\nB3,x\r\n', 4),    # literal quotes are fine
])
def test_unterminated_csv_quote_is_exit_2_naming_file_and_line(tmp_path, body, line):
    src = tmp_path / "broken.csv"
    src.write_text("report_id,report_text\n" + body)
    out = tmp_path / "out.parquet"
    res = annotate(src, "-o", out, "--tasks", "none")
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.startswith(f"Error: {src} line {line}: ") and "quot" in res.stderr, res.stderr
    assert res.stderr.count("\n") == 1 and not out.exists() and not Path(str(out) + ".radbatch").exists()


def test_quoted_fields_with_newlines_commas_and_doubled_quotes_still_read(tmp_path):
    src = tmp_path / "good.tsv"
    src.write_bytes(b'\xef\xbb\xbf"report_id"\treport_text\r\n1\t"a\tb\n""c"""\r\n2\t5" nodule, "x"\n3\t"end"')
    res = annotate(src, "-o", tmp_path / "o.parquet", "--tasks", "none")
    assert res.returncode == 0, res.stderr
    df = pl.read_parquet(tmp_path / "o.parquet")
    assert df["report_text"].to_list() == ['a\tb\n"c"', '5" nodule, "x"', "end"]


# -- item 6: directory outputs and --restart resumes -----------------------------------------------------------

def test_restart_with_fewer_inputs_leaves_no_earlier_outputs_in_a_directory_output(tmp_path):
    a, b = write_parquet(tmp_path / "a.parquet", 16), write_csv(tmp_path / "b.csv", 8)
    d = tmp_path / "out"
    assert annotate(a, b, "-o", f"{d}/", "--tasks", "none").returncode == 0
    mine = d / "notes.parquet"
    pq.write_table(pa.table({"x": [1]}), mine)   # not a radbatch output: never touched
    res = annotate(a, "-o", f"{d}/", "--tasks", "none", "--restart")
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in d.iterdir()) == ["00000-a.parquet", "_radbatch", "notes.parquet"]
    assert pl.read_parquet(d / "00000-a.parquet").height == 16 and pl.read_parquet(mine).height == 1


@pytest.mark.parametrize("dir_output", [False, True])
@pytest.mark.parametrize("rerun_with_restart", [True, False])
def test_interrupted_restart_resumes_with_the_command_the_hint_names(tmp_path, dir_output, rerun_with_restart):
    """An output of another run (--limit 8), then --restart interrupted at finalize (all 3 parts written). The hint
    says "Rerun the same command to resume": that command continues (0 rows recomputed), and so does the command
    without --restart; neither wipes the parts again nor refuses the earlier output it was started to replace."""
    src = write_parquet(tmp_path / "in.parquet", 24)
    out = f"{tmp_path / 'out'}/" if dir_output else str(tmp_path / "out.parquet")
    assert annotate(src, "-o", out, "--tasks", "none", "--limit", "8").returncode == 0
    res = annotate(src, "-o", out, "--tasks", "none", "--restart", patch=STOP_AT_FINALIZE)
    assert res.returncode == 130 and "Rerun the same command to resume." in res.stderr, res.stderr
    again = ["--restart"] if rerun_with_restart else []
    res = annotate(src, "-o", out, "--tasks", "none", *again)
    assert res.returncode == 0, res.stderr
    assert computed(res) == 0, res.stdout
    final = Path(out) / "00000-in.parquet" if dir_output else Path(out)
    assert pl.read_parquet(final)["source_row"].to_list() == list(range(24))
    res = annotate(src, "-o", out, "--tasks", "none")
    assert res.returncode == 0 and "Nothing to do" in res.stdout
    res = annotate(src, "-o", out, "--tasks", "none", "--restart")   # a finished run: --restart starts over
    assert res.returncode == 0 and computed(res) == 24


# -- item 7: mixed id types --------------------------------------------------------------------------------------

def test_mixed_id_types_are_exit_2_before_any_work(tmp_path):
    ints = write_parquet(tmp_path / "a.parquet", 8, ids=list(range(8)))
    texts = write_csv(tmp_path / "b.csv", 8)
    out = tmp_path / "out.parquet"
    res = annotate(ints, texts, "-o", out, "--tasks", "none")
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.startswith("Error: column 'report_id' holds int64 values in ") and f"{ints}" in res.stderr
    assert f"string values in {texts}" in res.stderr and "-o DIR/" in res.stderr
    assert not out.exists() and not Path(str(out) + ".radbatch").exists()
    res = annotate(ints, texts, "-o", f"{tmp_path / 'd'}/", "--tasks", "none")   # one output per input: fine
    assert res.returncode == 0, res.stderr
    assert pl.read_parquet(tmp_path / "d" / "00000-a.parquet")["report_id"].dtype == pl.Int64
    assert pl.read_parquet(tmp_path / "d" / "00001-b.parquet")["report_id"].dtype == pl.String


def test_struct_ids_are_exit_2_before_any_work(tmp_path):
    src = write_parquet(tmp_path / "a.parquet", 8, ids=[{"site": "A", "n": i} for i in range(8)])
    res = annotate(src, "-o", tmp_path / "out.parquet", "--tasks", "none")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "report ids must be single values" in res.stderr and not (tmp_path / "out.parquet.radbatch").exists()


# -- item 9: what the resume logic trusts is fsynced -----------------------------------------------------------

def test_run_json_parts_and_priors_are_fsynced_and_renamed_with_their_folder(tmp_path, monkeypatch):
    """A spy on os.fsync / os.replace (the real calls still run): run.json (begun and complete), every part and
    priors.parquet are fsynced as temp files, renamed, and then their folder is fsynced."""
    from radbatch.archive.reading import ColumnOptions, inspect
    from radbatch.cli.main import cli
    from radbatch.archive.priors import build_priors
    monkeypatch.setenv("RADBATCH_PART_ROWS", "8")   # read when the run is planned
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(a, b):
        events.append(("replace", str(a), str(b)))
        return real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    src = write_parquet(tmp_path / "in.parquet", 16, patient_id=["P"] * 16,
                        study_date=[f"2020-01-{i + 1:02d}" for i in range(16)])
    out = tmp_path / "out.parquet"
    res = CliRunner().invoke(cli, ["annotate", str(src), "-o", str(out), "--tasks", "none", "-q"])
    assert res.exit_code == 0, res.output
    work = tmp_path / "out.parquet.radbatch"
    build_priors([inspect(0, src, "utf-8")], ColumnOptions(patient="patient_id", date="study_date"), "utf-8",
                 work, None)

    def durable(final: Path) -> int:
        """How many times `final` was written durably: fsync(temp), rename(temp, final), fsync(folder)."""
        n = 0
        for i, e in enumerate(events):
            if e[0] == "replace" and e[2] == str(final):
                assert ("fsync", e[1]) in events[:i], (final, events)
                assert ("fsync", str(final.parent)) in events[i + 1:], (final, events)
                n += 1
        return n

    assert durable(work / "run.json") == 2   # begun, complete
    assert durable(out) == 1 and durable(work / "priors.parquet") == 1
    parts = {e[2] for e in events if e[0] == "replace" and "/parts/part-" in e[2]}
    assert len(parts) == 2 and all(durable(Path(p)) == 1 for p in parts)
    assert json.loads((work / "run.json").read_text())["complete"] is True


# -- item 10: no traceback, ever --------------------------------------------------------------------------------

@pytest.mark.parametrize("target, where, at", [
    ("radbatch.annotation.rows.assemble", "unit 0:8 (rows from 8) of input file", "annotation/rows.py"),   # via the job's RowJob
    ("radbatch.annotation.pipeline.finalize", "writing the output", "annotation/pipeline.py")])
def test_an_unexpected_exception_is_one_line_and_exit_70(tmp_path, target, where, at):
    """An exception radbatch does not expect, raised with report text in its message (as Arrow and polars errors
    sometimes are): exit 70 and one line naming its type, where in radbatch it was raised and the unit or file;
    never its message, never a traceback."""
    module, name = target.rsplit(".", 1)
    patch = f"""
import {module}
_real = {module}.{name}
def _boom(*args, **kwargs):
    if "{name}" == "finalize" or args[0].start_row == 8:
        raise ValueError("cell text: {MARKER}")
    return _real(*args, **kwargs)
{module}.{name} = _boom
"""
    src = write_parquet(tmp_path / "in.parquet", 24)
    res = annotate(src, "-o", tmp_path / "out.parquet", "--tasks", "none", patch=patch)
    assert res.returncode == 70, res.stdout + res.stderr
    assert res.stderr.startswith(f"Error: unexpected ValueError at radbatch/{at}:") and res.stderr.count("\n") == 1
    assert f"while working on {where}" in res.stderr and "rerun the same command to resume" in res.stderr


def test_an_unexpected_exception_in_a_command_without_its_own_handler_is_one_line(tmp_path):
    patch = f"""
import radbatch.sample.archive
def _boom(*args, **kwargs):
    raise KeyError("{MARKER}")
radbatch.sample.archive.write_archive = _boom
"""
    res = radbatch("sample", "-n", "3", "-o", tmp_path / "s.parquet", patch=patch)
    assert res.returncode == 70, res.stdout + res.stderr
    assert res.stderr.startswith("Error: unexpected KeyError ") and res.stderr.count("\n") == 1


def test_usage_errors_keep_their_exit_code(tmp_path):
    res = annotate(write_parquet(tmp_path / "in.parquet", 8), "-o", tmp_path / "o.parquet", "--ray-address", "x")
    assert res.returncode == 2 and "--ray-address needs --executor ray" in res.stderr


# -- item 11: empty CSV ids are missing ids ---------------------------------------------------------------------

def test_empty_csv_ids_are_missing_not_duplicates(tmp_path):
    src = tmp_path / "ids.csv"
    src.write_text(f'report_id,report_text\n,"a {MARKER}"\n"","b {MARKER}"\nR3,c\nR3,d\n,e\n')
    out = tmp_path / "out.parquet"
    res = annotate(src, "-o", out, "--tasks", "none")
    assert res.returncode == 0, res.stderr
    df = pl.read_parquet(out)
    assert df["report_id"].to_list() == [None, None, "R3", "R3", None]
    assert df["id_duplicated"].to_list() == [False, False, True, True, False]
    assert "duplicated report ids: 2 rows" in annotate(src, "-o", out, "--tasks", "none", "--restart").stdout
