"""bench/quality.py's scoring parts on constructed archives: baselines from gold alone, the per-head table with
targets and rates, and the gold-free rates for real reports. (Its `run` mode is `radbatch annotate` plus these.)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from radbatch.evaluation import Settings
from radbatch.evaluation.synthetic import write_table

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "quality.py"
spec = importlib.util.spec_from_file_location("bench_quality", SCRIPT)
quality = importlib.util.module_from_spec(spec)
spec.loader.exec_module(quality)
FAST = Settings(resamples=100)


def gold_rows() -> list[dict]:
    rows = []
    for i, (m, qa) in enumerate([("M0", "No"), ("M0", "No"), ("M1", "3 cm"), (None, "Yes")]):
        rows.append({"report_id": f"r{i}", "gold__m_staging__stage": m, "gold__radiology_qa__answer": qa})
    return rows


def test_baselines_from_gold_alone(tmp_path):
    write_table(tmp_path / "gold.parquet", gold_rows())
    lines, out = quality.baselines(tmp_path / "gold.parquet", FAST)
    assert out["m_staging"]["n"] == 3 and out["m_staging"]["majority_baseline"] == pytest.approx(2 / 3)
    assert out["radiology_qa"]["majority_baseline"] is None            # text: no majority class
    assert out["radiology_qa"]["constant_answer_primary"] == pytest.approx(2 / 4)   # always "No"
    assert out["radiology_qa"]["constant_answer_share"] == pytest.approx(2 / 4)
    assert any(line.startswith("| m_staging | 3 | stage/accuracy | 0.667 |") for line in lines)


def test_score_prints_metric_ci_baseline_target_and_rates(tmp_path):
    rows = gold_rows()
    preds = [("M0", "ok", None), ("M1", "ok", None), (None, "truncated", "output reached max_tokens (6)"), ("M0", "ok", None)]
    for row, (stage, status, error) in zip(rows, preds):
        row |= {"m_staging__stage": stage, "m_staging__status": status, "m_staging__error": error}
    write_table(tmp_path / "run.parquet", rows)
    lines, out = quality.score("default", tmp_path / "run.parquet", FAST)
    m = out["m_staging"]
    assert m["value"] == pytest.approx(1 / 3) and m["baseline"] == pytest.approx(2 / 3)
    assert m["target_metric"] == "stage/accuracy" and m["target"] == 0.90
    assert m["rates"]["truncation"]["count"] == 1 and m["rates"]["truncation"]["n"] == 3
    line = next(x for x in lines if x.startswith("| m_staging |"))
    assert ">= 0.9 missed" in line and "0.333 (1/3)" in line


def test_an_archive_without_gold_gives_rates_only(tmp_path):
    rows = [{"report_id": f"r{i}", "n_staging__status": s, "n_staging__error": e}
            for i, (s, e) in enumerate([("ok", None), ("truncated", "x"), ("not_applicable", "no findings section"),
                                        ("error", "output does not fit the n_staging format: bad")])]
    write_table(tmp_path / "real.parquet", rows)
    lines, out = quality.report("real", tmp_path / "real.parquet", FAST)
    assert out["n_staging"]["ran"] == 3 and out["n_staging"]["truncation"]["count"] == 1
    assert out["n_staging"]["invalid_output"]["count"] == 1
    assert "| n_staging | 3 | 1 | 1 | 0.333 (1/3) | 0.333 (1/3) | 0.000 (0/3) |" in lines
