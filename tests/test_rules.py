"""The rules member (radbatch/engines/rules, `kind = "rules"` in models.toml): the CheXpert rule labeller on negation,
uncertainty and multi-sentence reports, and the member inside annotate, route, `radbatch models` and the plan.

The sentences below were written for these tests from ordinary chest radiograph language; none comes from the
sample generator's templates or from the radlabels reports.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from radbatch.errors import InputError, RecipeError
from radbatch.engines.rules import HEADS, source_sha256
from radbatch.engines.rules import rads, staging
from radbatch.engines.rules.chexpert import LABELS, answer, label_report
from conftest import REPO, run_cli, write_reports


def labels(text: str) -> dict:
    return label_report(text)


# --- negation -------------------------------------------------------------------------------------------

def test_negation_cues_cover_a_list_of_findings():
    v = labels("Lungs are well expanded. There is no pleural effusion, pneumothorax or focal consolidation.")
    assert (v["Pleural Effusion"], v["Pneumothorax"], v["Consolidation"]) == ("negative",) * 3
    v = labels("Chest is free of pneumothorax. Negative for acute rib fracture.")
    assert v["Pneumothorax"] == "negative" and v["Fracture"] == "negative"
    v = labels("The lungs are clear without evidence of edema.")
    assert v["Edema"] == "negative"


def test_negation_scope_ends_at_but_however_and_which():
    v = labels("No pneumothorax, but there is a small left pleural effusion.")
    assert v["Pneumothorax"] == "negative" and v["Pleural Effusion"] == "positive"
    v = labels("No focal consolidation; however, subsegmental atelectasis is noted at the right base.")
    assert v["Consolidation"] == "negative" and v["Atelectasis"] == "positive"
    v = labels("Without pleural effusion, although there is mild interstitial edema.")
    assert v["Pleural Effusion"] == "negative" and v["Edema"] == "positive"


def test_resolved_and_removed_findings_are_negative():
    v = labels("The right apical pneumothorax seen yesterday has resolved. Interval removal of the chest tube.")
    assert v["Pneumothorax"] == "negative" and v["Support Devices"] == "negative"
    v = labels("The left effusion has nearly resolved.")  # partly resolved: still there
    assert v["Pleural Effusion"] == "positive"


def test_no_change_and_stable_phrases_are_not_negations():
    v = labels("No change in moderate cardiomegaly. No significant interval change in bilateral effusions.")
    assert v["Cardiomegaly"] == "positive" and v["Pleural Effusion"] == "positive"
    v = labels("Mild pulmonary edema is not significantly changed.")
    assert v["Edema"] == "positive"
    v = labels("No new consolidation.")
    assert v["Consolidation"] == "negative"


def test_normal_heart_size_negates_cardiomegaly_and_enlargement_is_positive():
    v = labels("Heart size is normal. The mediastinal contours are within normal limits.")
    assert v["Cardiomegaly"] == "negative" and v["Enlarged Cardiomediastinum"] == "negative"
    assert labels("The heart is moderately enlarged.")["Cardiomegaly"] == "positive"
    assert labels("The heart is not enlarged.")["Cardiomegaly"] == "negative"


# --- uncertainty ----------------------------------------------------------------------------------------

def test_explicit_doubt_is_uncertain():
    assert labels("A small right pleural effusion cannot be excluded.")["Pleural Effusion"] == "uncertain"
    assert labels("Possible early left lower lobe pneumonia.")["Pneumonia"] == "uncertain"
    assert labels("Questionable tiny left apical pneumothorax.")["Pneumothorax"] == "uncertain"
    assert labels("Trace bilateral effusions, if any.")["Pleural Effusion"] == "uncertain"
    assert labels("Cannot exclude a subtle nondisplaced rib fracture.")["Fracture"] == "uncertain"


def test_an_excluded_negation_is_doubt_not_absence():
    """"is not excluded" and "cannot be ruled out" contain "not" but are uncertainty, not negation."""
    assert labels("Basilar opacity; infection is not excluded.")["Pneumonia"] == "uncertain"
    assert labels("Edema cannot be ruled out.")["Edema"] == "uncertain"


def test_leading_explanation_reads_as_an_assertion():
    """A hedged attribution naming the finding as the reader's explanation counts as present (module docstring),
    while the alternative the reader only cannot exclude stays uncertain."""
    v = labels("Patchy left basilar opacity most likely reflects atelectasis, though aspiration cannot be excluded.")
    assert v["Atelectasis"] == "positive" and v["Lung Opacity"] == "positive" and v["Pneumonia"] == "uncertain"


# --- sections, multiple sentences, No Finding -------------------------------------------------------------

def test_indication_and_history_are_not_findings():
    report = ("INDICATION: Fever, evaluate for pneumonia or effusion.\n\nCOMPARISON: None.\n\n"
              "FINDINGS: The lungs are clear. Cardiomediastinal silhouette is normal.\n\nIMPRESSION: Normal chest.")
    v = labels(report)
    assert v["Pneumonia"] is None and v["Pleural Effusion"] is None
    assert v["No Finding"] == "positive"


def test_mentions_across_sentences_combine_positive_over_uncertain_over_negative():
    report = ("FINDINGS: No pleural effusion on the right. Small left pleural effusion. Possible mild edema.\n"
              "No edema in the upper zones.\n\nIMPRESSION:\n1. Small left effusion.\n2. Pulmonary edema is "
              "questioned.")
    v = labels(report)
    assert v["Pleural Effusion"] == "positive" and v["Edema"] == "uncertain"
    assert v["No Finding"] is None


def test_lines_wrapped_mid_sentence_are_one_sentence():
    v = labels("FINDINGS: There is no\npneumothorax. Right-sided\nchest tube remains in place.")
    assert v["Pneumothorax"] == "negative" and v["Support Devices"] == "positive"


def test_no_finding_ignores_devices_but_not_other_abnormalities():
    v = labels("Endotracheal tube ends 4 cm above the carina. Lungs are clear. No effusion or pneumothorax.")
    assert v["Support Devices"] == "positive" and v["No Finding"] == "positive"
    assert labels("Hyperinflated lungs consistent with emphysema. No effusion.")["No Finding"] is None
    assert labels("Mild cardiomegaly.")["No Finding"] is None


def test_answer_text_is_what_the_head_parser_reads():
    from radbatch.heads.recipes import load_recipes
    from radbatch.heads.tasks import HeadInstance
    head = HeadInstance(load_recipes().tasks["abnormality_detection"])
    values = head.parse(answer("Small right effusion. No pneumothorax. Possible left base atelectasis."))
    assert values["abnormality_detection__pleural_effusion"] == "positive"
    assert values["abnormality_detection__pneumothorax"] == "negative"
    assert values["abnormality_detection__atelectasis"] == "uncertain"
    assert values["abnormality_detection__cardiomegaly"] is None
    assert head.parse(answer("Radiograph obtained for line placement.")) == head.parse("No Finding: positive")
    assert tuple(name for name, _ in head.recipe.answer.labels) == LABELS


# --- RADS categories stated in the report ------------------------------------------------------------------

def test_stated_rads_categories_in_their_usual_spellings():
    cases = {
        "Assessment: BI-RADS category 4A, suspicious abnormality. Biopsy recommended.": "BI-RADS 4A",
        "Right thyroid nodule, ACR TI-RADS TR3 (3 points).": "TI-RADS TR3",
        "Segment 8 observation measuring 2.4 cm: LR-5.": "LI-RADS LR-5",
        "Treated observation without residual enhancement, LI-RADS treatment response: LR-TR nonviable.":
            "LI-RADS LR-TR nonviable",
        "Left peripheral zone lesion, PI-RADS v2.1 score 4.": "PI-RADS 4",
        "Unilocular smooth cyst, O-RADS US 2.": "O-RADS 2",
        "Overall: CAD-RADS 2.0 category 4A.": "CAD-RADS 4A",
        "Post-treatment neck: NI-RADS 2a at the primary site.": "NI-RADS 2a",
        "Solid nodule 7 mm. Lung-RADS category 3; 6-month LDCT.": "Lung-RADS 3",
        "Bladder tumour with intact muscularis propria (VI-RADS 2).": "VI-RADS 2",
    }
    for text, expected in cases.items():
        assert rads.answer(text) == expected, text


def test_rads_reads_only_what_is_stated_and_the_final_assessment_wins():
    assert rads.answer("Heterogeneously dense breasts. No suspicious findings.") == "No applicable RADS"
    assert rads.answer("Solid hypoechoic nodule, taller than wide, 11 points.") == "No applicable RADS"
    assert rads.answer("Prior study was BI-RADS 3. IMPRESSION: Stable finding, now BI-RADS 2.") == "BI-RADS 2"
    assert rads.answer("Aorta measures 4.5 cm; Lung-RADS 2.") == "Lung-RADS 2"
    assert rads.answer("BI-RADS 7.") == "No applicable RADS"  # not a category of the system


# --- M stage from asserted distant metastases --------------------------------------------------------------

def test_m_stage_from_asserted_negated_and_hedged_distant_metastases():
    assert staging.m_stage("FINDINGS: Multiple hypoenhancing hepatic metastases, the largest 2.1 cm.") == "M1"
    assert staging.m_stage("Sclerotic osseous metastases in T10 and the left iliac bone.") == "M1"
    assert staging.m_stage("Nodular omental thickening compatible with peritoneal carcinomatosis.") == "M1"
    assert staging.m_stage("No evidence of distant metastatic disease. Liver and adrenals are normal.") == "M0"
    assert staging.m_stage("Enlarged necrotic mesenteric lymph node consistent with nodal metastasis.") == "M0"
    assert staging.m_stage("A 6 mm hepatic hypodensity is too small to characterise; possible metastasis.") == "M0"
    assert staging.m_stage("Subcentimetre pulmonary nodules; pulmonary metastases cannot be excluded.") == "M0"


def test_m_stage_reads_a_stated_tnm_category_and_skips_the_history():
    assert staging.m_stage("IMPRESSION: Rectal carcinoma, staged cT3 N1 M0.") == "M0"
    assert staging.m_stage("IMPRESSION: Findings in keeping with stage M1b disease.") == "M1"
    report = "HISTORY: Colon cancer with liver metastases, resected.\n\nFINDINGS: No new hepatic lesion."
    assert staging.m_stage(report) == "M0"


# --- the member in models.toml, the plan, annotate, route -----------------------------------------------

def _models(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "models.toml"
    path.write_text('[models.lm]\npath = "embedded"\n\n[models.rules]\nkind = "rules"\nlicence = "Apache-2.0"\n'
                    'description = "rule labeller"\n' + extra)
    return path


def _routing(tmp_path: Path, abnormality: str, rest: str = "lm") -> Path:
    from radbatch.heads.recipes import load_recipes
    path = tmp_path / "routing.toml"
    routes = "\n".join(f'{t} = "{abnormality if t == "abnormality_detection" else rest}"'
                       for t in load_recipes().order)
    path.write_text(f'status = "provisional"\n\n[routes]\n{routes}\n')
    return path


def test_models_file_validates_rules_members_strictly(tmp_path: Path):
    from radbatch.heads.models import load_models
    specs = load_models(_models(tmp_path), {"radbatch"})
    assert specs["rules"].is_rules and specs["rules"].licence == "Apache-2.0" and not specs["lm"].is_rules
    bad = tmp_path / "bad.toml"
    bad.write_text('[models.r]\nkind = "rules"\npath = "rules.gguf"\ncontext_size = 512\n\n'
                   '[models.x]\nkind = "regex"\n')
    with pytest.raises(RecipeError) as exc:
        load_models(bad, {"radbatch"})
    text = str(exc.value)
    assert "takes only description, kind, licence, profile; remove context_size, path" in text
    assert "kind must be one of llama, rules; got 'regex'" in text


def test_a_recipe_edited_away_from_the_rules_format_is_named():
    from dataclasses import replace
    from radbatch.heads.recipes import load_recipes
    from radbatch.engines.rules import check_recipe
    tasks = load_recipes().tasks
    assert [check_recipe(tasks[t]) for t in HEADS] == [[], [], []]
    abn = tasks["abnormality_detection"]
    renamed = replace(abn, answer=replace(abn.answer, labels=(("Lung Nodule", "lung_nodule"),) + abn.answer.labels[1:]))
    assert "not the 14 CheXpert labels" in check_recipe(renamed)[0]
    r = tasks["rads_assignment"]
    fewer = replace(r, answer=replace(r.answer, systems=tuple((k, v) for k, v in r.answer.systems if k != "O-RADS")))
    assert "its systems lack O-RADS 0" in check_recipe(fewer)[0]
    assert check_recipe(replace(abn, inputs=("findings",))) == ["its first input is findings, not the report"]


def test_worker_memory_of_a_rules_member_is_zero(tmp_path: Path):
    from radbatch.heads.models import load_models
    from radbatch.annotation.plan import worker_memory
    assert worker_memory([load_models(_models(tmp_path), {"radbatch"})["rules"]], "batched") == 0


def test_annotate_routes_abnormality_to_the_rules_member(tmp_path: Path):
    texts = ["FINDINGS: Small left pleural effusion. No pneumothorax.\nIMPRESSION: Small left effusion.",
             "The lungs are clear. Heart size is normal. No effusion.",
             "Right lower lobe opacity could be atelectasis; pneumonia cannot be excluded."]
    src = write_reports(tmp_path / "in.parquet", texts=texts)
    out = tmp_path / "out.parquet"
    res = run_cli("annotate", src, "-o", out, "--models-file", _models(tmp_path), "--routing-file",
                  _routing(tmp_path, "rules"), "--tasks", "abnormality_detection", "-q")
    assert res.returncode == 0, res.stderr
    t = pq.read_table(out).to_pydict()
    assert t["abnormality_detection__model"] == ["rules"] * 3
    assert t["abnormality_detection__status"] == ["ok"] * 3 and t["status"] == ["ok"] * 3
    assert t["abnormality_detection__pleural_effusion"] == ["positive", "negative", None]
    assert t["abnormality_detection__pneumothorax"] == ["negative", None, None]
    assert t["abnormality_detection__no_finding"] == [None, "positive", None]
    assert t["abnormality_detection__atelectasis"][2] == "positive"
    assert t["abnormality_detection__pneumonia"][2] == "uncertain"
    meta = pq.read_schema(out).metadata
    assert source_sha256().encode() in b"".join(meta.values())  # the run's provenance records the rules' hash


def test_rules_and_a_model_serve_heads_of_one_run(tmp_path: Path):
    """The rules engine and the llama.cpp engine live in the same worker; each head keeps its model column."""
    src = write_reports(tmp_path / "in.parquet", n=2)
    out = tmp_path / "out.parquet"
    routing = _routing(tmp_path, "rules")
    res = run_cli("annotate", src, "-o", out, "--models-file", _models(tmp_path), "--routing-file", routing,
                  "--tasks", "rads_assignment,abnormality_detection", "-q")
    assert res.returncode == 0, res.stderr
    t = pq.read_table(out).to_pydict()
    assert t["abnormality_detection__model"] == ["rules", "rules"]
    assert t["rads_assignment__model"] == ["lm", "lm"]
    assert t["abnormality_detection__pleural_effusion"][0] == "positive"


def test_a_head_the_rules_do_not_serve_is_refused_before_work(tmp_path: Path):
    src = write_reports(tmp_path / "in.parquet", n=2)
    out = tmp_path / "out.parquet"
    res = run_cli("annotate", src, "-o", out, "--models-file", _models(tmp_path), "--model", "rules", "-q")
    assert res.returncode == 2
    assert "model 'rules' is a rules member and serves only abnormality_detection, rads_assignment, " \
           "m_staging; it cannot serve impression_generation, temporal_comparison" in res.stderr
    assert not out.exists()
    res = run_cli("annotate", src, "-o", out, "--models-file", _models(tmp_path), "--routing-file",
                  _routing(tmp_path, "lm", rest="rules"), "--tasks", "n_staging", "-q")
    assert res.returncode == 2 and "cannot serve n_staging" in res.stderr


def test_recipes_validate_refuses_a_routing_file_sending_a_head_the_rules_do_not_serve(tmp_path: Path):
    import shutil
    from radbatch.heads.validate import validate_all
    root = tmp_path / "recipes"
    shutil.copytree(REPO / "recipes", root)
    routing = (root / "routing.toml").read_text()
    routed = re.search(r'^n_staging = "[^"]+"$', routing, flags=re.M)
    assert routed, "the shipped routing names a model for n_staging"
    (root / "routing.toml").write_text(routing.replace(routed.group(0), 'n_staging = "rules"'))
    with pytest.raises(RecipeError) as exc:
        validate_all(root)
    assert "route n_staging -> 'rules', a rules member that serves only abnormality_detection, rads_assignment, " \
        "m_staging" in str(exc.value)


def test_models_command_lists_the_rules_member_with_the_hash_of_its_sources():
    res = run_cli("models")
    assert res.returncode == 0, res.stderr
    block = res.stdout.split("\nrules: ", 1)[1]
    assert f"sha256: {source_sha256()} (source files)" in block
    assert "can serve: abnormality_detection, rads_assignment, m_staging" in block and "licence: Apache-2.0" in block


def test_route_takes_the_rules_member_as_a_candidate_and_only_for_its_heads(tmp_path: Path):
    from radbatch.annotation.plan import AnnotateOptions
    from radbatch.route_selection import _choose, route
    # Scores: the rules member is measured on its head only and can never be chosen for another.
    scores = {"lm": {"abnormality_detection": ("f1", 0.2, 9), "m_staging": ("acc", 0.5, 9)},
              "rules": {"abnormality_detection": ("f1", 0.9, 9)}}
    assert _choose("abnormality_detection", ["lm", "rules"], scores, {"lm": 10, "rules": 0}).model == "rules"
    assert _choose("radiology_qa", ["lm"], scores, {"lm": 10}).model == "lm"
    # With the rules member as the only candidate, the heads it cannot serve are named before any dev run.
    src = write_reports(tmp_path / "dev.parquet", n=2)
    with pytest.raises(InputError, match="no candidate model can serve impression_generation"):
        route(AnnotateOptions((str(src),), "", quiet=True), _models(tmp_path), tmp_path / "work", ["rules"])
    assert not (tmp_path / "work" / "dev-rules.parquet").exists()



def test_an_adapter_for_a_head_routed_to_the_rules_member_is_refused(tmp_path):
    """--adapter with the default routing (m_staging -> rules) would otherwise be silently ignored."""
    src = write_reports(tmp_path / "in.parquet", n=2)
    res = run_cli("annotate", src, "-o", tmp_path / "o.parquet", "--tasks", "m_staging", "--adapter",
                  REPO / "adapters" / "smollm2-radbatch-v2a.gguf")
    assert res.returncode == 2 and "m_staging is routed to the rules member, which takes no adapter" in res.stderr
    assert not (tmp_path / "o.parquet").exists()
