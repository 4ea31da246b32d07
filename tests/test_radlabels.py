"""The radlabels real-phrasing set: the committed split, the CheXpert mapping and the archive it yields."""

from __future__ import annotations

from radbatch.evaluation import radlabels
from radbatch.heads.recipes import load_recipes


def test_committed_split_is_what_split_computes_and_holds_only_synth_0401_to_1000():
    parts = radlabels.committed_split()
    assert parts == radlabels.split()
    ids = [i for part in parts.values() for i in part]
    assert len(ids) == len(set(ids)) == 600
    assert {int(i.removeprefix("synth_")) for i in ids} == set(radlabels.OURS)


def test_findings_of_one_label_combine_present_over_uncertain_over_absent():
    g = radlabels.chexpert({"pulmonary_edema": "definitely absent",
                            "pulmonary_congestion_pulmonary_venous_congestion": "uncertain",
                            "atelectasis": "definitely absent", "lobar_segmental_collapse": "definitely present"})
    assert g["Edema"] == "uncertain" and g["Atelectasis"] == "positive" and g["Cardiomegaly"] is None
    assert g["No Finding"] is None


def test_no_finding_is_positive_only_when_nothing_but_devices_is_present():
    assert radlabels.chexpert({"pneumothorax": "definitely absent", "endotracheal_tube": "definitely present"})[
        "No Finding"] == "positive"
    assert radlabels.chexpert({"emphysema": "definitely present"})["No Finding"] is None   # unmapped still counts
    assert radlabels.chexpert({"pleural_effusion": "uncertain"})["No Finding"] is None


def test_archive_of_the_dev_part_has_text_and_gold_columns_named_by_the_recipe():
    head = load_recipes().tasks["abnormality_detection"]
    slugs = dict(head.answer.labels)
    table = radlabels.archive("dev", slugs)
    assert table.num_rows == 120
    assert table.column("report_id").to_pylist() == radlabels.committed_split()["dev"]
    assert all(t.strip() for t in table.column("report_text").to_pylist())
    gold = [c for c in table.column_names if c.startswith("gold__abnormality_detection__")]
    assert len(gold) == 14
    assert set(table.column("gold__abnormality_detection__pleural_effusion").to_pylist()) <= {
        "positive", "negative", "uncertain", None}
