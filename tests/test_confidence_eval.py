"""Calibration in `radbatch eval`: ECE, risk-coverage, the target-precision threshold and temperature scaling,
on constructed annotated files whose confidence columns follow annotate's contract (`<task>__confidence`,
`abnormality_detection__<label>_confidence`). The numbers the construction implies are worked out by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from radbatch.cli.main import cli
from radbatch.evaluation import Settings, evaluate
from radbatch.evaluation.calibration import (ece, fit_temperature, read_calibration, threshold_for_precision)
from radbatch.evaluation.confidence import CONFIDENCE_TASKS, confidence_column
from radbatch.evaluation.errors import EvalError

import pyarrow as pa
import pyarrow.parquet as pq


def write_table(path: Path, rows: list[dict]) -> None:
    """Typed as annotate writes them: confidences float64, source_row int64, the rest strings."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    types = {c: pa.float64() if c.endswith("confidence") else pa.int64() if c == "source_row" else pa.string()
             for c in columns}
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema([(c, types[c]) for c in columns])), path)

# (confidence, rows, of which right): precision of confidence >= 0.95 is 20/20, >= 0.85 is 39/40 = 0.975,
# >= 0.6 is 54/70, >= 0.3 is 63/100.
GROUPS = [(0.95, 20, 20), (0.85, 20, 19), (0.6, 30, 15), (0.3, 30, 9)]


def staging_rows(groups=GROUPS, file="in.parquet") -> list[dict]:
    rows = []
    for conf, n, right in groups:
        for k in range(n):
            i = len(rows)
            rows.append({"source_file": file, "source_row": i, "report_id": f"r{i}",
                         "report_text": f"Report {i}: <b>nodes</b> & \"quotes\" <script>alert(1)</script>",
                         "m_staging__status": "ok", "m_staging__stage": "M1" if k < right else "M0",
                         "m_staging__model": "smollm2-ft-a", confidence_column("m_staging"): conf,
                         "gold__m_staging__stage": "M1"})
    return rows


@pytest.fixture()
def staged(tmp_path) -> Path:
    path = tmp_path / "annotated.parquet"
    rows = staging_rows()
    rows += [{"source_file": "in.parquet", "source_row": 100, "report_id": "r100", "report_text": "x",
              "m_staging__status": "error", "m_staging__stage": None, "m_staging__model": "smollm2-ft-a",
              confidence_column("m_staging"): None, "gold__m_staging__stage": "M0"}]
    write_table(path, rows)
    return path


def test_threshold_search_returns_the_threshold_the_construction_implies(staged):
    result = evaluate([staged], settings=Settings(resamples=50), target_precision=0.98)
    calib = result.runs[0].heads["m_staging"].calibration
    assert calib["without_confidence"] == 1 and calib["raw"]["items"] == 100
    t = calib["raw"]["threshold"]
    assert (t["status"], t["threshold"], t["accepted"], t["coverage"], t["precision"]) == \
        ("reached", 0.95, 20, 0.2, 1.0)
    t = evaluate([staged], settings=Settings(resamples=50), target_precision=0.97).runs[0].heads["m_staging"]
    assert t.calibration["raw"]["threshold"]["threshold"] == 0.85
    assert t.calibration["raw"]["threshold"]["coverage"] == pytest.approx(0.4)
    # risk-coverage: the most confident 20% are all right, the most confident 40% are 39/40
    points = {p["coverage"]: p["accuracy"] for p in calib["raw"]["risk_coverage"]}
    assert points[0.2] == 1.0 and points[0.4] == pytest.approx(0.975) and points[1.0] == pytest.approx(0.63)


def test_unreachable_precision_is_reported_as_such():
    conf = np.array([0.9, 0.9, 0.8, 0.7])
    right = np.array([True, False, True, True])
    t = threshold_for_precision(conf, right, 0.99)
    assert t["status"] == "unreachable" and t["threshold"] is None and t["coverage"] == 0.0
    # but 2/3 is reachable: the lowest threshold with precision >= 0.6 is 0.7 (3/4), covering everything
    assert threshold_for_precision(conf, right, 0.6)["threshold"] == 0.7


def test_ece_on_a_constructed_case():
    # bin (0.9, 1.0]: 10 items at 0.95, 8 right -> |0.8 - 0.95|; bin (0.2, 0.3]: 10 at 0.25, 5 right -> |0.5 - 0.25|
    conf = np.array([0.95] * 10 + [0.25] * 10)
    right = np.array([True] * 8 + [False] * 2 + [True] * 5 + [False] * 5)
    value, bins = ece(conf, right)
    assert value == pytest.approx(0.5 * 0.15 + 0.5 * 0.25)
    assert [b["count"] for b in bins] == [0, 0, 10, 0, 0, 0, 0, 0, 0, 10]
    # a boundary value belongs to the bin it closes: 0.3 is in (0.2, 0.3], 0 in the first bin
    assert [b["count"] for b in ece(np.array([0.3, 0.0]), np.array([True, True]))[1]][:3] == [1, 0, 1]


def test_temperature_fit_matches_the_closed_form():
    # one confidence value 0.9 at 70% accuracy: the NLL is minimal where sigmoid(logit(0.9) / T) = 0.7
    conf = np.full(100, 0.9)
    right = np.arange(100) < 70
    expected = math.log(0.9 / 0.1) / math.log(0.7 / 0.3)
    assert fit_temperature(conf, right) == pytest.approx(expected, rel=1e-3)


def test_calibrate_command_and_eval_before_after(staged, tmp_path):
    runner = CliRunner()
    out = tmp_path / "calibration.toml"
    res = runner.invoke(cli, ["calibrate", str(staged), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("m_staging") and "Wrote" in res.output
    temps = read_calibration(out, CONFIDENCE_TASKS)
    assert set(temps) == {"m_staging"} and temps["m_staging"] > 0
    report = tmp_path / "report"
    res = runner.invoke(cli, ["eval", str(staged), "--target-precision", "0.98", "--calibration", str(out),
                              "--report", str(report)])
    assert res.exit_code == 0, res.output
    assert "confidence (raw): 100 items, ECE" in res.output
    assert "precision 0.98: confidence >= 0.9500 accepts 20 (20.0%)" in res.output
    assert f"confidence (T={temps['m_staging']:.3g})" in res.output
    data = json.loads((report / "metrics.json").read_text())
    calib = data["runs"][0]["heads"]["m_staging"]["calibration"]
    assert calib["calibrated"]["nll"] < calib["raw"]["nll"]  # fitted and judged on the same file here
    assert calib["raw"]["threshold"]["threshold"] == 0.95
    page = (report / "report.html").read_text()
    for png in ("m_staging_reliability_run.png", "m_staging_risk_coverage_run.png"):
        assert f"<img src='{png}'" in page and (report / png).stat().st_size > 5_000
    assert "Report 0" not in page  # the eval report never shows report text


def test_calibration_file_is_validated_strictly(tmp_path):
    bad = tmp_path / "calibration.toml"
    bad.write_text('schema = 1\ncolour = "red"\n[heads.m_staging]\ntemperature = -1\n'
                   '[heads.radiology_qa]\ntemperature = 2\n[heads.n_staging]\ntemprature = 2\n')
    with pytest.raises(EvalError) as err:
        read_calibration(bad, CONFIDENCE_TASKS)
    text = str(err.value)
    for expected in ("unknown key 'colour'", "heads.m_staging.temperature must be a positive number",
                     "heads.radiology_qa: not a head with confidences", "heads.n_staging: unknown key 'temprature'"):
        assert expected in text
    res = CliRunner().invoke(cli, ["eval", "x.parquet", "--calibration", str(bad)])
    assert res.exit_code == 2 and "invalid calibration file" in res.output   # an input error


def test_abnormality_items_are_cells_with_their_own_confidence(tmp_path):
    rows = []
    for i in range(4):
        row = {"source_file": "a", "source_row": i, "abnormality_detection__status": "ok",
               "abnormality_detection__edema": "positive", "gold__abnormality_detection__edema": "positive",
               confidence_column("abnormality_detection", "edema"): 0.9,
               "abnormality_detection__atelectasis": None,
               "gold__abnormality_detection__atelectasis": "negative" if i < 2 else None,
               confidence_column("abnormality_detection", "atelectasis"): 0.6}
        rows.append(row)
    path = tmp_path / "abn.parquet"
    write_table(path, rows)
    calib = evaluate([path], settings=Settings(resamples=20), target_precision=1.0).runs[0] \
        .heads["abnormality_detection"].calibration
    # 4 rows x 2 labels with confidences: edema right 4/4 at 0.9; atelectasis right 2/4 (null = not mentioned)
    assert calib["raw"]["items"] == 8 and calib["raw"]["accuracy"] == pytest.approx(6 / 8)
    assert calib["raw"]["threshold"]["threshold"] == 0.9 and calib["raw"]["threshold"]["coverage"] == 0.5


def test_target_precision_without_confidence_columns_says_so(tmp_path):
    path = tmp_path / "plain.parquet"
    write_table(path, [{"source_file": "a", "source_row": 0, "m_staging__status": "ok", "m_staging__stage": "M0",
                        "gold__m_staging__stage": "M0"}])
    result = evaluate([path], settings=Settings(resamples=10), target_precision=0.9)
    assert result.runs[0].heads["m_staging"].calibration == {}
    assert any("no evaluated head has confidence columns" in n for n in result.runs[0].join.notes)
