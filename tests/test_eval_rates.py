"""Truncation and invalid-output rates per head, in `radbatch eval` and from an annotated file without gold.

Constructed rows with hand-counted outcomes; the error messages are the ones radbatch/annotation/rows.py writes.
"""

from __future__ import annotations

import json

import polars as pl
import pytest

from radbatch.evaluation import Settings, evaluate, format_table
from radbatch.evaluation.output_rates import frame_rates
from radbatch.evaluation.synthetic import write_table

FAST = Settings(resamples=200, seed=0)
REFUSED = "output does not fit the m_staging format: expected one of M0, M1"
ENGINE = "prompt has 2100 tokens + 8 to generate, more than the context of 2048"

# (gold, prediction, status, error): 8 labelled rows, 1 not_applicable, so 7 scored
M_ROWS = [
    ("M0", "M0", "ok", None),
    ("M1", "M1", "ok", None),
    ("M0", "M9", "ok", None),                      # parsed, but not in the vocabulary: invalid output
    ("M1", None, "truncated", "output reached max_tokens (8) before the answer ended"),
    ("M0", None, "truncated", "output reached max_tokens (8) before the answer ended"),
    ("M0", None, "error", REFUSED),                 # the parser refused it: invalid output
    ("M1", None, "error", ENGINE),                  # not about the answer: other error
    ("M0", None, "not_applicable", "no findings section"),
]


def rows(with_gold: bool = True) -> list[dict]:
    out = []
    for i, (gold, pred, status, error) in enumerate(M_ROWS):
        row = {"source_file": "in.parquet", "source_row": i, "report_id": f"r{i}", "m_staging__status": status,
               "m_staging__stage": pred, "m_staging__error": error}
        out.append(row | ({"gold__m_staging__stage": gold} if with_gold else {}))
    return out


def test_eval_rates_over_scored_items(tmp_path):
    write_table(tmp_path / "p.parquet", rows())
    result = evaluate([tmp_path / "p.parquet"], settings=FAST)
    head = result.runs[0].heads["m_staging"]
    assert head.counts["scored"] == 7 and head.counts["invalid_predictions"] == 1
    assert head.rates["truncation"] == {"rate": pytest.approx(2 / 7), "count": 2, "n": 7}
    assert head.rates["invalid_output"] == {"rate": pytest.approx(2 / 7), "count": 2, "n": 7}  # M9 + refusal
    assert head.rates["other_error"] == {"rate": pytest.approx(1 / 7), "count": 1, "n": 7}
    assert "  rates: truncation 0.286 (2/7), invalid output 0.286 (2/7), other errors 0.143 (1/7)" in \
        format_table(result).splitlines()
    data = json.loads(json.dumps(result.to_json()))
    assert data["runs"][0]["heads"]["m_staging"]["rates"]["invalid_output"]["count"] == 2


def test_eval_rates_with_a_separate_gold_file(tmp_path):
    # the error column comes from the predictions file; the join must find the refusal on its row
    pred = [{k: v for k, v in r.items() if not k.startswith("gold__")} for r in rows()]
    gold = [{"source_file": r["source_file"], "source_row": r["source_row"], "gold__m_staging__stage": g}
            for r, (g, *_) in zip(rows(), M_ROWS)]
    write_table(tmp_path / "pred.parquet", pred[::-1])   # a different row order than the gold
    write_table(tmp_path / "gold.parquet", gold)
    head = evaluate([tmp_path / "pred.parquet"], gold=tmp_path / "gold.parquet", settings=FAST).runs[0].heads["m_staging"]
    assert head.rates["invalid_output"]["count"] == 2 and head.rates["other_error"]["count"] == 1


def test_rates_without_gold():
    frame = pl.DataFrame(rows(with_gold=False))
    r = frame_rates(frame, "m_staging")
    assert (r["ran"], r["not_applicable"], r["ok"]) == (7, 1, 3)
    assert r["truncation"] == {"rate": pytest.approx(2 / 7), "count": 2, "n": 7}
    assert r["invalid_output"]["count"] == 1        # no vocabulary check without gold: the refusal only
    assert r["other_error"]["count"] == 1
    assert frame_rates(frame, "radiology_nli") is None


def test_a_head_that_never_ran_has_undefined_rates():
    frame = pl.DataFrame({"n_staging__status": ["not_applicable", "not_applicable"], "n_staging__error": ["x", "y"]})
    r = frame_rates(frame, "n_staging")
    assert r["ran"] == 0 and r["truncation"]["n"] == 0 and r["truncation"]["rate"] != r["truncation"]["rate"]  # NaN
