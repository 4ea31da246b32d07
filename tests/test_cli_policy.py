"""One error-to-exit-code policy for every command (radbatch/cli/policy.py, applied by the command group): the
same kind of fault exits with the same code whichever command meets it. 2 input error, 3 engine error,
4 storage error, 70 a radbatch bug, 130 interrupted; one `Error: ...` line, never a traceback.

Each command meets a real fault: a missing input file, or an output path under a regular file. eval's input
errors exited 1 and eval's, calibrate's and sample's storage errors exited 1 before this policy."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from radbatch.cli.main import cli
from radbatch.cli.policy import PolicyGroup, exit_code
from radbatch.errors import EngineError, InputError, RadbatchError, RecipeError, StorageError
from radbatch.evaluation.confidence import confidence_column
from radbatch.evaluation.errors import EvalError
from test_confidence_eval import write_table

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "finetune" / "smollm2_135m_lora.toml"


def run(*args) -> click.testing.Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """An annotated file with confidences and gold, a reports archive, a models file, a regular file that blocks
    any output path under it, and a filled review CSV."""
    rows = [{"source_file": "archive.parquet", "source_row": i, "report_id": f"id-{i}", "report_text": f"Report {i}",
             "m_staging__status": "ok", "m_staging__stage": "M1" if i % 2 else "M0", "m_staging__model": "m",
             confidence_column("m_staging"): 0.95 - 0.05 * i, "gold__m_staging__stage": "M1" if i % 3 else "M0"}
            for i in range(8)]
    annotated = tmp_path / "annotated.parquet"
    write_table(annotated, rows)
    reports = tmp_path / "reports.parquet"
    reports.write_bytes((REPO / "sample_data" / "reports.parquet").read_bytes())
    models = tmp_path / "models.toml"
    models.write_text('[models.good]\npath = "embedded"\n')
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    assert run("review", annotated, "--head", "m_staging", "--lowest", "2", "-o", tmp_path / "queue").exit_code == 0
    lines = (tmp_path / "queue" / "review.csv").read_text().splitlines()
    queue = list(csv.DictReader(io.StringIO("\n".join(lines[1:]))))
    queue[0]["correct_answer"] = "ok"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(queue[0]))
    writer.writeheader()
    writer.writerows(queue)
    answers = tmp_path / "answers.csv"
    answers.write_text(lines[0] + "\n" + buf.getvalue())
    return {"annotated": annotated, "reports": reports, "models": models, "blocked": blocked, "answers": answers,
            "missing": tmp_path / "missing.parquet", "tmp": tmp_path}


# command -> arguments whose input file does not exist, and the message naming it
INPUT_ERRORS = {
    "annotate": (lambda f: [f["missing"], "-o", f["tmp"] / "o.parquet", "--tasks", "none", "-q"],
                 "input file not found: "),
    "route": (lambda f: [f["missing"], "--models", f["models"], "-o", f["tmp"] / "r.toml", "--work-dir",
                         f["tmp"] / "w"], "input file not found: "),
    "eval": (lambda f: [f["missing"]], "predictions file "),
    "calibrate": (lambda f: [f["missing"], "-o", f["tmp"] / "c.toml"], "dev file "),
    "review": (lambda f: [f["missing"], "--head", "m_staging", "--lowest", "1", "-o", f["tmp"] / "q"],
               "annotated file "),
    "review-import": (lambda f: [f["tmp"] / "missing.csv", "--annotated", f["annotated"], "-o", f["tmp"] / "g.parquet"],
                      "answers file "),
    "models": (lambda f: ["--models-file", f["tmp"] / "missing.toml"], "invalid recipes"),
    "recipes validate": (lambda f: [f["tmp"]], "invalid recipes"),
}

# command -> arguments whose output path lies under a regular file, and the message naming it
STORAGE_ERRORS = {
    "annotate": (lambda f: [f["reports"], "-o", f["blocked"] / "o.parquet", "--tasks", "none", "-q"],
                 "cannot create the work directory "),
    "route": (lambda f: [f["reports"], "--models", f["models"], "-o", f["tmp"] / "r.toml", "--work-dir",
                         f["blocked"] / "w"], "cannot write {blocked}/w: "),
    "eval": (lambda f: [f["annotated"], "--json", f["blocked"] / "m.json"], "cannot write {blocked}: "),
    "calibrate": (lambda f: [f["annotated"], "-o", f["blocked"] / "c.toml"], "cannot write {blocked}: "),
    "sample": (lambda f: ["-n", "3", "-o", f["blocked"] / "s.parquet"], "cannot write {blocked}/s.parquet: "),
    "review": (lambda f: [f["annotated"], "--head", "m_staging", "--lowest", "1", "-o", f["blocked"] / "q"],
               "cannot create output folder "),
    "review-import": (lambda f: [f["answers"], "--annotated", f["annotated"], "-o", f["blocked"] / "g.parquet"],
                      "cannot write "),
}


def assert_one_error(res, code: int, start: str) -> None:
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    error = res.output.split("Error: ", 1)[1]
    assert error.startswith(start), res.output


@pytest.mark.parametrize("command", sorted(INPUT_ERRORS))
def test_an_input_error_is_exit_2_for_every_command(files, command):
    args, start = INPUT_ERRORS[command]
    assert_one_error(run(*command.split(), *args(files)), 2, start)


@pytest.mark.parametrize("command", sorted(STORAGE_ERRORS))
def test_a_storage_error_is_exit_4_for_every_command(files, command):
    args, start = STORAGE_ERRORS[command]
    assert_one_error(run(*command.split(), *args(files)), 4, start.format(blocked=files["blocked"]))


def test_finetune_input_and_storage_errors_exit_2_and_4(files):
    """The same two faults for finetune (torch loads here, so one test for both)."""
    res = run("finetune", files["missing"], "--recipe", RECIPE, "-o", files["tmp"] / "ft")
    assert res.exit_code == 2 and "Error: input file not found: " in res.output and "Traceback" not in res.output
    labelled = files["tmp"] / "labelled.parquet"
    assert run("sample", "-n", "12", "-o", labelled).exit_code == 0
    res = run("finetune", labelled, "--recipe", RECIPE, "-o", files["blocked"] / "ft", "--max-steps", "1", "-q")
    assert res.exit_code == 4 and "Traceback" not in res.output, res.output
    assert f"Error: cannot create the finetune output folder {files['blocked'] / 'ft'}: " in res.output


def test_every_command_runs_under_the_group_policy():
    """The group applies the policy, so a command added later (a nested group included) cannot miss it."""
    assert isinstance(cli, PolicyGroup)
    assert set(cli.commands) == {"annotate", "tasks", "models", "route", "recipes", "sample", "eval", "calibrate",
                                 "review", "review-import", "finetune", "cache"}


@pytest.mark.parametrize("error, code, output", [
    (InputError("column 'x' not found"), 2, "Error: column 'x' not found\n"),
    (EvalError("bad join"), 2, "Error: bad join\n"),
    (RecipeError(["a.toml: unknown key 'b'"]), 2, "Error: invalid recipes:\n  - a.toml: unknown key 'b'\n"),
    (EngineError("model file not found"), 3, "Error: model file not found\n"),
    (StorageError("disk full"), 4, "Error: disk full\n"),
    (KeyboardInterrupt(), 130, "\nInterrupted. Rerun the same command to resume.\n"),
])
def test_the_mapping_from_error_class_to_exit_code(monkeypatch, error, code, output):
    """Plumbing: a throwaway command raising each class shows the one mapping (the real faults are above)."""
    @click.command("boom")
    def boom():
        raise error
    monkeypatch.setitem(cli.commands, "boom", boom)
    res = run("boom")
    assert (res.exit_code, res.output) == (code, output) and exit_code(error) == code


def test_an_unexpected_error_is_one_line_exit_70_without_its_message(monkeypatch):
    @click.command("boom")
    def boom():
        raise ValueError("a cell of a report")
    monkeypatch.setitem(cli.commands, "boom", boom)
    res = run("boom")
    assert res.exit_code == 70 and res.output.startswith("Error: unexpected ValueError ")
    assert "a cell of a report" not in res.output and res.output.count("\n") == 1
    assert exit_code(RadbatchError("x")) == 1


def test_no_import_circle_between_the_group_and_its_commands():
    """finetune_command, eval's, sample's and review's commands import the shared policy and options, not
    radbatch.cli.main (which imports them to register them)."""
    code = ("import sys, radbatch.cli.finetune, radbatch.cli.evaluate, radbatch.cli.sample, "
            "radbatch.cli.review; print('radbatch.cli.main' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


def test_column_options_reach_annotate_as_one_columnoptions():
    """The CLI's option decorators hand annotate a ColumnOptions; the Python API takes it as `columns=` and
    refuses it together with the per-column keywords (a silent choice between the two would be a guess)."""
    from radbatch.api import annotate_options
    from radbatch.archive.reading import ColumnOptions

    opts = annotate_options(["a.parquet"], "o.parquet", columns=ColumnOptions(text="body", patient="mrn"), limit=3)
    assert (opts.columns.text, opts.columns.patient, opts.columns.id, opts.limit) == ("body", "mrn", "report_id", 3)
    assert annotate_options(["a.parquet"], "o.parquet", text_column="body").columns == ColumnOptions(text="body")
    with pytest.raises(InputError, match="give columns= or text_column, not both"):
        annotate_options(["a.parquet"], "o.parquet", columns=ColumnOptions(), text_column="body")


def test_a_closed_stdout_pipe_stops_quietly():
    """`radbatch tasks | head -1`: the reader closes the pipe; radbatch stops with 141 (128 + SIGPIPE) and says
    nothing, instead of reporting a BrokenPipeError as a radbatch bug (exit 70)."""
    proc = subprocess.Popen([sys.executable, "-m", "radbatch", "tasks"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"rads_assignment")
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err.decode()
    assert err == b""
