"""`radbatch eval` as a user meets it: printed table, metrics.json, messages and exit codes, comparisons."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from radbatch.cli.main import cli
from radbatch.evaluation.synthetic import write_synthetic, write_table

SECRET = "SECRET PATIENT TEXT 4711"


def invoke(*args: str):
    """`radbatch eval ARGS` through the command group, so its one exit-code policy applies."""
    return CliRunner().invoke(cli, ["eval", *map(str, args)])


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synthetic"))


def m_rows(with_text: bool = False) -> list[dict]:
    rows = []
    for i, (gold, pred, status) in enumerate([("M0", "M0", "ok"), ("M1", None, "error"), ("M1", "M1", "ok"),
                                              ("M0", None, "not_applicable")]):
        rows.append({"source_file": "in.parquet", "source_row": i, "report_id": f"r{i}", "m_staging__status": status,
                     "m_staging__stage": pred, "gold__m_staging__stage": gold} | ({"report": SECRET} if with_text else {}))
    return rows


def test_single_run_table_and_json(tmp_path):
    write_table(tmp_path / "p.parquet", m_rows())
    result = invoke(tmp_path / "p.parquet", "--json", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("bootstrap: 1000 resamples, seed 0, 95% percentile intervals")
    assert lines[3] == ("join inline: 4 gold rows, 4 with predictions, 0 missing (scored wrong); "
                        "0 prediction rows without gold (not scored)")
    assert lines[5] == ("m_staging: 3 scored of 4 labelled | ok 2, error 1, truncated 0, missing 0 | "
                        "not_applicable 1 | invalid gold 0 | invalid outputs 0")
    # the error row has no message, so it is not a parser refusal: an other error, not an invalid output
    assert lines[6] == "  rates: truncation 0.000 (0/3), invalid output 0.000 (0/3), other errors 0.333 (1/3)"
    assert lines[8].split()[:3] == ["stage/accuracy", "*", "0.667"]   # 2 of 3; majority M1 -> baseline 0.667
    assert lines[8].split()[-2:] == ["3", "0.667"]
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["schema_version"] == 1 and data["bootstrap"]["resamples"] == 1000 and data["comparison"] is None
    fig = data["runs"][0]["heads"]["m_staging"]["metrics"]["stage/accuracy"]
    assert set(fig) == {"value", "ci_low", "ci_high", "n", "baseline", "support", "summary"}
    assert fig["value"] == pytest.approx(2 / 3) and fig["n"] == 3
    assert data["runs"][0]["heads"]["m_staging"]["primary"] == "stage/accuracy"


def test_output_is_deterministic(tmp_path):
    write_table(tmp_path / "p.parquet", m_rows())
    assert invoke(tmp_path / "p.parquet").output == invoke(tmp_path / "p.parquet").output


def test_two_runs_b_clearly_better_is_significant(synthetic, tmp_path):
    result = invoke(synthetic["run_a"], synthetic["run_b"], "--gold", synthetic["gold"], "--json", tmp_path / "c.json")
    assert result.exit_code == 0, result.output
    assert "comparison: b - a, paired bootstrap over the items scored in both runs" in result.output
    data = json.loads((tmp_path / "c.json").read_text())
    primaries = {task: head["primary"] for task, head in data["runs"][0]["heads"].items()}
    assert len(primaries) == 9
    for task, key in primaries.items():
        diff = data["comparison"][task][key]
        assert diff["diff"] > 0 and diff["ci_low"] > 0 and diff["p_value"] < 0.05, (task, diff)
        assert diff["b"] - diff["a"] == pytest.approx(diff["diff"])


@pytest.mark.parametrize("args, code, message", [
    (["nope.parquet"], 2, "Error: predictions file 'nope.parquet' not found."),  # an input error, as annotate's
    (["a.parquet", "b.parquet", "c.parquet"], 2, "give 1 PREDICTIONS file, or 2 to compare runs; got 3."),
    (["p.parquet", "--tasks", "rads,m_staging"], 2, "Unknown task 'rads' in --tasks. Known: rads_assignment,"),
    ([], 2, "Missing argument 'PREDICTIONS...'"),
])
def test_usage_and_input_errors(tmp_path, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    write_table(tmp_path / "p.parquet", m_rows())
    result = invoke(*args)
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output


def test_join_errors_are_messages_without_report_text(tmp_path):
    rows = m_rows(with_text=True)
    write_table(tmp_path / "p.parquet", [r | {"report_id": "dup"} for r in rows])
    write_table(tmp_path / "g.parquet", [{"report_id": "dup", "gold__m_staging__stage": "M0"}] * 2)
    result = invoke(tmp_path / "p.parquet", "--gold", tmp_path / "g.parquet", "--id-column", "report_id")
    assert result.exit_code == 2
    assert "report_id must be unique to join" in result.output and SECRET not in result.output


def test_report_text_never_reaches_outputs(tmp_path):
    write_table(tmp_path / "p.parquet", m_rows(with_text=True))
    result = invoke(tmp_path / "p.parquet", "--report", tmp_path / "rep", "--json", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    for text in (result.output, (tmp_path / "m.json").read_text(), (tmp_path / "rep" / "report.html").read_text(),
                 (tmp_path / "rep" / "metrics.json").read_text()):
        assert SECRET not in text


def test_importing_the_command_stays_light():
    code = ("import sys, radbatch.evaluation, radbatch.cli.evaluate; "
            "print(sorted(m for m in ('numpy', 'polars', 'pyarrow', 'matplotlib', 'rouge_score', 'nltk') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unwritable_output_is_a_message(tmp_path):
    write_table(tmp_path / "p.parquet", m_rows())
    (tmp_path / "afile").write_text("x")
    result = invoke(tmp_path / "p.parquet", "--json", tmp_path / "afile" / "m.json")
    assert result.exit_code == 4 and "Traceback" not in result.output   # a storage error, as annotate's
    assert result.output == f"Error: cannot write {tmp_path / 'afile'}: File exists. " \
                            "Choose a writable --report / --json location.\n"


def test_nothing_to_evaluate_names_the_reason(tmp_path):
    write_table(tmp_path / "p.parquet", [{"report_id": "r0", "gold__m_staging__stage": "M0"}])
    result = invoke(tmp_path / "p.parquet")
    assert result.exit_code == 2
    assert "nothing to evaluate: no head has both gold and prediction columns (m_staging: " in result.output
