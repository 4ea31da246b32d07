"""Hand-computed values for every `radbatch eval` metric, on tiny real Parquet files with inline gold.

Each test writes a few annotated rows (prediction + gold__ columns), runs evaluate() and checks the figures
against values worked out in the comments.
"""

from __future__ import annotations

import pytest

from radbatch.evaluation import Settings, evaluate
from radbatch.evaluation.metrics_text import rouge_l, token_f1
from radbatch.evaluation.synthetic import write_table

FAST = Settings(resamples=200, seed=0)


def row(i: int, task: str, pred: dict | None, gold: dict, status: str = "ok") -> dict:
    """One annotated row for one head; pred None = no output (its columns stay null)."""
    out = {"source_file": "reports.parquet", "source_row": i, "report_id": f"r{i}", f"{task}__status": status}
    out |= {f"{task}__{k}": v for k, v in (pred or {}).items()}
    out |= {f"gold__{task}__{k}": v for k, v in gold.items()}
    return out


def score(tmp_path, task: str, rows: list[dict]):
    path = tmp_path / f"{task}.parquet"
    write_table(path, rows)
    return evaluate([path], tasks=[task], settings=FAST).runs[0].heads[task]


def values(head) -> dict[str, float]:
    return {k: f.value for k, f in head.metrics.items()}


def rads(system, category):
    return {"system": system, "category": category}


RADS_CASES = [  # (gold, prediction, status); prediction ("none", None) = "No applicable RADS", as the parser writes it
    (rads("BI-RADS", "4"), rads("BI-RADS", "4"), "ok"),          # correct
    (rads("BI-RADS", "2"), rads("BI-RADS", "4"), "ok"),          # overcall: 4 above 2 on the BI-RADS scale
    (rads("BI-RADS", "5"), rads("BI-RADS", "3"), "ok"),          # undercall
    (rads("LI-RADS", "LR-3"), rads("TI-RADS", "TR3"), "ok"),     # other: wrong system
    (rads("none", None), rads("none", None), "ok"),              # correct: none = none
    (rads("BI-RADS", "4"), None, "error"),                       # other: no output
    (rads("Lung-RADS", "2"), rads("Lung-RADS", "7"), "ok"),      # other: not a Lung-RADS category (invalid)
    (rads("PI-RADS", "3"), rads("none", None), "ok"),            # other: none vs some
]


def test_rads_hand_computed(tmp_path):
    head = score(tmp_path, "rads_assignment", [row(i, "rads_assignment", p, g, s) for i, (g, p, s) in enumerate(RADS_CASES)])
    v = values(head)
    assert v["accuracy"] == pytest.approx(2 / 8)                 # rows 0 and 4
    assert v["overcall_rate"] == pytest.approx(1 / 8)
    assert v["undercall_rate"] == pytest.approx(1 / 8)
    assert v["other_error_rate"] == pytest.approx(4 / 8)         # rows 3, 5, 6, 7: the split sums to 1 - accuracy
    assert v["validity"] == pytest.approx(6 / 8)                 # not valid: the error row and Lung-RADS 7
    assert v["system_accuracy"] == pytest.approx(4 / 8)          # rows 0, 1, 2, 4 (invalid output counts wrong)
    assert v["system/BI-RADS/accuracy"] == pytest.approx(1 / 4)  # rows 0, 1, 2, 5
    assert v["system/none/accuracy"] == 1.0
    # majority gold label is BI-RADS 4 (2 of 8 rows); within BI-RADS too (2 of 4)
    assert head.metrics["accuracy"].baseline == pytest.approx(2 / 8)
    assert head.metrics["system/BI-RADS/accuracy"].baseline == pytest.approx(2 / 4)
    assert head.metrics["system/BI-RADS/accuracy"].n == 4
    assert head.extras["severity"] == {"overcall": 1, "undercall": 1, "other_error": 4}
    assert head.counts["error"] == 1 and head.counts["invalid_predictions"] == 1 and head.counts["scored"] == 8


def test_rads_perfect_and_gold_spellings(tmp_path):
    # Gold "none" may be written as the recipe's none text in any case; categories match ignoring case.
    golds = [rads("No applicable RADS", None), rads("ni-rads", "2A"), rads("Lung-RADS", "4X")]
    preds = [rads(None, None), rads("NI-RADS", "2a"), rads("Lung-RADS", "4X")]   # both null: older "none"
    v = values(score(tmp_path, "rads_assignment", [row(i, "rads_assignment", p, g) for i, (g, p) in enumerate(zip(golds, preds))]))
    assert v["accuracy"] == v["validity"] == v["system_accuracy"] == 1.0
    assert v["overcall_rate"] == v["undercall_rate"] == v["other_error_rate"] == 0.0


def test_rads_unknown_gold_is_excluded_and_counted(tmp_path):
    rows = [row(0, "rads_assignment", rads("BI-RADS", "3"), rads("BI-RADS", "3")),
            row(1, "rads_assignment", rads("BI-RADS", "3"), rads("BI-RADS", "9")),   # not a BI-RADS category
            row(2, "rads_assignment", rads("BI-RADS", "3"), rads("XX-RADS", "1"))]   # unknown system
    head = score(tmp_path, "rads_assignment", rows)
    assert head.counts["invalid_gold"] == 2 and head.counts["scored"] == 1
    assert head.metrics["accuracy"].value == 1.0 and head.metrics["accuracy"].n == 1


def stage(s):
    return {"stage": s}


def test_choice_accuracy_macro_f1_and_baseline(tmp_path):
    gold, pred = ["N0", "N0", "N1", "N2"], ["N0", "N1", "N1", "N0"]
    head = score(tmp_path, "n_staging", [row(i, "n_staging", stage(p), stage(g)) for i, (g, p) in enumerate(zip(gold, pred))])
    v = values(head)
    assert v["stage/accuracy"] == pytest.approx(0.5)             # rows 0 and 2
    # F1 per class: N0 tp1 fp1 fn1 -> 1/2; N1 tp1 fp1 -> 2/3; N2 fn1 -> 0; N3 absent from gold and
    # prediction -> left out. macro = (1/2 + 2/3 + 0) / 3
    assert v["stage/macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    # majority N0: accuracy 2/4; F1 N0 = 2*2/(2*2+2) = 2/3, N1 = N2 = 0 -> macro 2/9
    assert head.metrics["stage/accuracy"].baseline == pytest.approx(0.5)
    assert head.metrics["stage/macro_f1"].baseline == pytest.approx(2 / 9)
    assert "node_involvement/accuracy" not in head.metrics       # no gold for that field
    assert head.extras["confusion"]["stage"]["matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_constant_prediction_scores_the_majority_baseline(tmp_path):
    gold = ["M0", "M0", "M1", "M0", "M1"]
    head = score(tmp_path, "m_staging", [row(i, "m_staging", stage("M0"), stage(g)) for i, g in enumerate(gold)])
    for key in ("stage/accuracy", "stage/macro_f1"):
        assert head.metrics[key].value == pytest.approx(head.metrics[key].baseline)
    assert head.metrics["stage/accuracy"].value == pytest.approx(3 / 5)
    assert head.metrics["stage/macro_f1"].value == pytest.approx(0.75 / 2)  # M0: 2*3/(6+2) = 0.75, M1: 0


def test_choice_perfect_unknown_labels_and_spelling(tmp_path):
    rows = [row(0, "radiology_nli", {"label": "entailment"}, {"label": " Entailment"}),   # gold spelling normalised
            row(1, "radiology_nli", {"label": "neutral"}, {"label": "neutral"}),
            row(2, "radiology_nli", {"label": "maybe"}, {"label": "contradiction"}),      # unknown prediction: wrong
            row(3, "radiology_nli", {"label": "neutral"}, {"label": "unsure"})]           # unknown gold: excluded
    head = score(tmp_path, "radiology_nli", rows)
    assert head.counts["invalid_predictions"] == 1 and head.counts["invalid_gold"] == 1
    assert head.metrics["label/accuracy"].value == pytest.approx(2 / 3)
    assert head.extras["confusion"]["label"]["predicted"][-1] == "(invalid)"
    perfect = score(tmp_path, "radiology_nli", rows[:2])
    assert perfect.metrics["label/accuracy"].value == perfect.metrics["label/macro_f1"].value == 1.0


def test_chexpert_per_label_accuracy_and_f1(tmp_path):
    g1 = {"atelectasis": "positive", "edema": "negative"}
    p1 = {"atelectasis": "positive", "edema": "uncertain", "cardiomegaly": "positive"}
    g2 = {"no_finding": "positive"}
    p2 = {"no_finding": "positive", "pleural_effusion": "negative"}
    head = score(tmp_path, "abnormality_detection",
                 [row(0, "abnormality_detection", p1, g1), row(1, "abnormality_detection", p2, g2)])
    v = values(head)
    # report 0: 12 of 14 cells right (edema, cardiomegaly wrong); report 1: 13 of 14 (pleural effusion)
    assert v["per_label_accuracy"] == pytest.approx(25 / 28)
    assert v["accuracy/atelectasis"] == 1.0 and v["accuracy/edema"] == 0.5
    # positive: atelectasis tp, no_finding tp, cardiomegaly fp
    assert v["f1/positive/atelectasis"] == 1.0 and v["f1/positive/cardiomegaly"] == 0.0
    assert v["f1/positive/micro/all_14"] == pytest.approx(2 * 2 / (2 * 2 + 1))
    assert v["f1/positive/macro/all_14"] == pytest.approx(2 / 3)      # labels with positives: 1, 0, 1
    assert v["f1/positive/weighted/all_14"] == pytest.approx(1.0)     # cardiomegaly has no gold support
    assert v["f1/positive/micro/competition_5"] == pytest.approx(2 / 3)  # atelectasis tp, cardiomegaly fp
    assert v["f1/positive/macro/competition_5"] == pytest.approx(0.5)
    # not mentioned: 25 gold cells; predicted on 23 of them, never where gold is mentioned -> 46/48
    assert v["f1/not_mentioned/micro/all_14"] == pytest.approx(46 / 48)
    assert v["f1/negative/micro/all_14"] == 0.0
    assert head.metrics["f1/positive/atelectasis"].support == 1
    # majority per label (ties -> first of positive, negative, uncertain, not mentioned): atelectasis
    # positive, edema negative, no_finding positive, the rest not mentioned -> 13/14 and 12/14 right
    assert head.metrics["per_label_accuracy"].baseline == pytest.approx(25 / 28)


def test_chexpert_errors_are_wrong_on_every_cell(tmp_path):
    rows = [row(0, "abnormality_detection", {}, {"edema": "positive"}),                # all 14 right
            row(1, "abnormality_detection", None, {"edema": "positive"}, "truncated"),  # all 14 wrong
            row(2, "abnormality_detection", {"edema": "maybe"}, {"edema": "positive"})]  # invalid cell
    head = score(tmp_path, "abnormality_detection", [rows[0] | {"abnormality_detection__edema": "positive"}] + rows[1:])
    assert head.metrics["per_label_accuracy"].value == pytest.approx((14 + 0 + 13) / 42)
    assert head.counts["truncated"] == 1 and head.counts["invalid_predictions"] == 1
    assert head.extras["invalid_cells"] == 1


def ents(*pairs):
    return {"entities": [{"text": t, "label": lab} for t, lab in pairs]}


def test_ner_exact_and_partial_f1(tmp_path):
    gold = ents(("Pleural effusion", "OBS-DP"), ("left lung", "ANAT-DP"), ("pneumothorax", "OBS-DA"))
    pred = ents(("pleural effusion.", "OBS-DP"),   # exact after normalisation
                ("left lower lung", "ANAT-DP"),    # partial: shares "left", "lung"
                ("pneumothorax", "OBS-DP"),        # wrong label: no match
                ("heart", "ANAT-DP"))              # spurious
    v = values(score(tmp_path, "radiology_ner", [row(0, "radiology_ner", pred, gold)]))
    # exact: tp 1 (OBS-DP), fp 3, fn 2 -> 2/(2+3+2)
    assert v["exact/f1/micro"] == pytest.approx(2 / 7)
    assert v["exact/precision/micro"] == pytest.approx(1 / 4) and v["exact/recall/micro"] == pytest.approx(1 / 3)
    # per label: OBS-DP tp1 fp1 -> 2/3; ANAT-DP fp2 fn1 -> 0; OBS-DA fn1 -> 0; OBS-U absent
    assert v["exact/f1/macro"] == pytest.approx((2 / 3) / 3)
    # partial adds left lower lung ~ left lung: tp 2, fp 2, fn 1 -> 4/7
    assert v["partial/f1/micro"] == pytest.approx(4 / 7)
    assert v["partial/f1/ANAT-DP"] == pytest.approx(2 / 3)


def test_ner_rouge_over_rendered_lists(tmp_path):
    rows = [row(0, "radiology_ner", ents(), ents()),                                   # "None" vs "None": 1
            row(1, "radiology_ner", ents(("effusion", "OBS-U")), ents(("effusion", "OBS-DP"))),
            row(2, "radiology_ner", None, ents(), "error")]                            # no output: 0
    v = values(score(tmp_path, "radiology_ner", rows))
    # row 1: tokens [effusion obs u] vs [effusion obs dp]: LCS 2 -> P = R = F = 2/3
    assert v["rouge_l"] == pytest.approx((1 + 2 / 3 + 0) / 3)


def changes(*items):
    return {"changes": [{"change": c, "cue": "x", "entity": e} for c, e in items]}


def test_temporal_jaccard_and_change_f1(tmp_path):
    rows = [row(0, "temporal_comparison",
                changes(("new", "Pleural Effusion"), ("worsened", "opacity"), ("unchanged", "heart size")),
                changes(("new", "pleural effusion"), ("improved", "opacity"))),
            row(1, "temporal_comparison", changes(), changes()),
            row(2, "temporal_comparison", None, changes(("resolved", "nodule")), "error")]
    v = values(score(tmp_path, "temporal_comparison", rows))
    # report 0: 1 shared item of 4 -> 1/4; report 1: both empty -> 1; report 2: no output -> 0
    assert v["jaccard"] == pytest.approx((0.25 + 1 + 0) / 3)
    # new tp1 -> 1; worsened fp1, unchanged fp1, improved fn1, resolved fn1 -> 0
    assert v["change_f1/new"] == 1.0 and v["change_f1/worsened"] == 0.0
    assert v["change_f1/micro"] == pytest.approx(2 / (2 + 2 + 2))
    assert v["change_f1/macro"] == pytest.approx(1 / 5)


def test_text_rouge_l_and_token_f1(tmp_path):
    assert rouge_l("a c d e", "a b c d") == pytest.approx(0.75)   # LCS a c d: P = R = 3/4
    assert token_f1("The answer is yes", "yes") == pytest.approx(0.5)  # [answer is yes] vs [yes]: P 1/3, R 1
    rows = [row(0, "impression_generation", {"text": "Left pleural effusion is small."}, {"text": "Small left pleural effusion."}),
            row(1, "impression_generation", None, {"text": "No acute disease."}, "truncated")]
    v = values(score(tmp_path, "impression_generation", rows))
    # row 0: LCS "left pleural effusion" = 3; P 3/5, R 3/4 -> F 2/3. Bag overlap 4: P 4/5, R 1 -> 8/9
    assert v["rouge_l"] == pytest.approx((2 / 3 + 0) / 2)
    assert v["token_f1"] == pytest.approx((8 / 9 + 0) / 2)


def test_qa_uses_the_answer_column_only_and_perfect_is_one(tmp_path):
    rows = [row(i, "radiology_qa", {"answer": a}, {"answer": a}) | {"radiology_qa__answer_1": "ignored"}
            for i, a in enumerate(["yes", "a small left effusion"])]
    v = values(score(tmp_path, "radiology_qa", rows))
    assert v["rouge_l"] == v["token_f1"] == 1.0
