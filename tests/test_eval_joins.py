"""How rows are joined and counted: statuses, missing rows on either side, duplicated ids, key choice."""

from __future__ import annotations

import polars as pl
import pytest

from radbatch.evaluation import EvalError, Settings, evaluate
from radbatch.evaluation.synthetic import write_table

FAST = Settings(resamples=100)
TASK = "m_staging"


def pred_row(i: int, stage: str | None, status: str | None = "ok", **keys) -> dict:
    base = {"source_file": "in.parquet", "source_row": i, "report_id": f"r{i}"} | keys
    return base | {f"{TASK}__status": status, f"{TASK}__stage": stage}


def gold_row(i: int, stage: str | None, **keys) -> dict:
    return {"source_file": "in.parquet", "source_row": i, "report_id": f"r{i}"} | keys | {f"gold__{TASK}__stage": stage}


def run(tmp_path, preds: list[dict], golds: list[dict] | None = None, **kwargs):
    write_table(tmp_path / "pred.parquet", preds)
    gold = None
    if golds is not None:
        write_table(tmp_path / "gold.parquet", golds)
        gold = tmp_path / "gold.parquet"
    return evaluate([tmp_path / "pred.parquet"], gold, settings=FAST, **kwargs)


def test_statuses_are_counted_and_scored_as_documented(tmp_path):
    rows = [pred_row(0, "M0") | gold_row(0, "M0"),
            pred_row(1, None, "error") | gold_row(1, "M0"),            # wrong
            pred_row(2, None, "truncated") | gold_row(2, "M1"),        # wrong
            pred_row(3, None, "not_applicable") | gold_row(3, "M1"),   # excluded
            pred_row(4, "M1", None) | gold_row(4, "M1"),               # null status = missing: wrong
            pred_row(5, "M1", "skipped") | gold_row(5, "M1"),          # unknown status: wrong
            pred_row(6, "M1") | gold_row(6, None)]                     # no gold: not scored
    result = run(tmp_path, rows)
    head = result.runs[0].heads[TASK]
    assert head.counts == {"labelled": 6, "not_applicable": 1, "invalid_gold": 0, "scored": 5, "ok": 1, "error": 1,
                           "truncated": 1, "missing": 1, "other_status": 1, "invalid_predictions": 0}
    assert head.metrics["stage/accuracy"].value == pytest.approx(1 / 5)
    join = result.runs[0].join
    assert (join.method, join.gold_rows, join.matched, join.predictions_without_gold) == ("inline", 6, 6, 1)


def test_missing_rows_on_either_side_are_counted(tmp_path):
    golds = [gold_row(i, "M0") for i in range(5)]
    preds = [pred_row(i, "M0") for i in (0, 1, 2, 3)] + [pred_row(i, "M0") for i in (10, 11)]
    result = run(tmp_path, preds, golds)
    join, head = result.runs[0].join, result.runs[0].heads[TASK]
    assert join.method == "source_file+source_row"
    assert (join.gold_rows, join.matched, join.missing_predictions, join.predictions_without_gold) == (5, 4, 1, 2)
    assert head.counts["missing"] == 1
    assert head.metrics["stage/accuracy"].value == pytest.approx(4 / 5)  # the missing row is scored wrong
    assert any("no prediction row" in n for n in join.notes)


def test_id_join_when_source_keys_are_absent_and_id_types_differ(tmp_path):
    pl.DataFrame({"report_id": [0, 1, 2], f"gold__{TASK}__stage": ["M1"] * 3}).write_parquet(tmp_path / "g.parquet")
    preds = [{"report_id": str(i), f"{TASK}__status": "ok", f"{TASK}__stage": "M1"} for i in range(3)]
    write_table(tmp_path / "pred.parquet", preds)
    result = evaluate([tmp_path / "pred.parquet"], tmp_path / "g.parquet", settings=FAST)  # int ids vs str ids
    assert result.runs[0].join.method == "id:report_id"
    assert result.runs[0].heads[TASK].metrics["stage/accuracy"].value == 1.0


def test_explicit_id_column_forces_an_id_join(tmp_path):
    golds = [gold_row(i, "M0", accession=f"A{i}", source_file="other.csv") for i in range(3)]
    preds = [pred_row(i, "M0", accession=f"A{i}") for i in range(3)]
    assert run(tmp_path, preds, golds).runs[0].join.matched == 0   # source keys differ: nothing matches
    result = run(tmp_path, preds, golds, id_column="accession")
    assert result.runs[0].join.method == "id:accession" and result.runs[0].join.matched == 3


def test_duplicated_ids_refuse_an_id_join(tmp_path):
    golds = [{"report_id": rid, f"gold__{TASK}__stage": "M0"} for rid in ("a", "b", "a", "c")]
    preds = [{"report_id": rid, f"{TASK}__status": "ok", f"{TASK}__stage": "M0"} for rid in ("a", "b", "c")]
    with pytest.raises(EvalError) as exc:
        run(tmp_path, preds, golds)
    message = str(exc.value)
    assert "report_id must be unique to join, but 1 value(s) occur more than once" in message
    assert "gold.parquet" in message and "rows 0 and 2" in message


def test_duplicated_ids_are_reported_when_joining_on_source_keys(tmp_path):
    golds = [gold_row(i, "M0") for i in range(3)]
    preds = [pred_row(i, "M0", report_id="same") for i in range(3)]
    join = run(tmp_path, preds, golds).runs[0].join
    assert join.method == "source_file+source_row" and join.duplicate_ids == 3 and join.matched == 3


def test_duplicated_source_keys_are_refused(tmp_path):
    golds = [gold_row(i, "M0") for i in range(2)]
    preds = [pred_row(0, "M0"), pred_row(0, "M0"), pred_row(1, "M0")]
    with pytest.raises(EvalError, match="source_file and source_row must be unique"):
        run(tmp_path, preds, golds)


def test_no_id_column_in_common_is_explained(tmp_path):
    golds = [{"case": "a", f"gold__{TASK}__stage": "M0"}]
    preds = [{"report_id": "a", f"{TASK}__status": "ok", f"{TASK}__stage": "M0"}]
    with pytest.raises(EvalError, match=r"column 'report_id' not found in .*gold.parquet.*Use --id-column"):
        run(tmp_path, preds, golds)


def test_gold_file_wins_over_inline_gold(tmp_path):
    preds = [pred_row(i, "M0") | gold_row(i, "M1") for i in range(2)]
    golds = [gold_row(i, "M0") for i in range(2)]
    assert run(tmp_path, preds, golds).runs[0].heads[TASK].metrics["stage/accuracy"].value == 1.0


def test_no_gold_columns_is_a_clear_error(tmp_path):
    with pytest.raises(EvalError, match=r"no gold columns in '.*pred.parquet' \(and no --gold file was given\)"):
        run(tmp_path, [pred_row(0, "M0")])


def test_missing_file_and_unknown_task(tmp_path):
    with pytest.raises(EvalError, match=r"predictions file '.*nope.parquet' not found"):
        evaluate([tmp_path / "nope.parquet"])
    write_table(tmp_path / "p.parquet", [pred_row(0, "M0") | gold_row(0, "M0")])
    with pytest.raises(EvalError, match=r"Unknown task 'radz'. Known: rads_assignment, "):
        evaluate([tmp_path / "p.parquet"], tasks=["radz"])
    with pytest.raises(EvalError, match=r"no gold columns for n_staging"):
        evaluate([tmp_path / "p.parquet"], tasks=["n_staging"])


def test_head_without_output_columns_is_skipped_with_reason(tmp_path):
    rows = [pred_row(0, "M0") | gold_row(0, "M0") | {"gold__radiology_qa__answer": "yes",
                                                      "radiology_qa__answer_1": "yes"}]
    run_ = run(tmp_path, rows).runs[0]
    assert set(run_.heads) == {TASK}
    assert "none of the output columns radiology_qa__answer" in run_.skipped["radiology_qa"]


def test_two_runs_share_the_first_files_gold(tmp_path):
    write_table(tmp_path / "a.parquet", [pred_row(i, "M0") | gold_row(i, "M0") for i in range(3)])
    write_table(tmp_path / "b.parquet", [pred_row(i, "M1") | gold_row(i, "M1") for i in range(3)])
    result = evaluate([tmp_path / "a.parquet", tmp_path / "b.parquet"], settings=FAST)
    a, b = result.runs
    assert a.join.method == "inline" and b.join.method == "source_file+source_row"
    assert "1 gold__ column(s) in this file were ignored" in b.join.notes[0]
    assert result.comparison[TASK]["stage/accuracy"].diff == -1.0


def test_undeclared_gold_columns_are_ignored_with_a_note(tmp_path):
    rows = [pred_row(0, "M0") | gold_row(0, "M0") | {"gold__m_staging__grade": "x", "gold__foo__bar": "y"}]
    run_ = run(tmp_path, rows).runs[0]
    assert set(run_.heads) == {TASK}
    assert run_.join.notes == ["ignored gold columns that no task recipe declares: gold__m_staging__grade, gold__foo__bar"]
