"""Gold labels of `radbatch sample` agree with the report text, per head, over many seeds.

The checkers below are written from radiology reporting conventions (CheXpert-style negation and
hedge cues, IASLC node stations, how RADS categories are stated), not from the generator: nothing
here imports its phrase tables or templates, only the public table-producing function.
"""

from __future__ import annotations

import functools
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radbatch.sample.archive import sample_table

SEEDS = st.integers(min_value=0, max_value=2**31 - 1)
# (split, messy): train-style wording, test-only wording, and rows roughened the way real exports are
MODES = st.sampled_from([("all", False), ("test", False), ("all", True)])
# SAMPLE_EXAMPLES=300 for a long hunt; the default keeps the suite fast
PROPERTY = settings(
    max_examples=int(os.environ.get("SAMPLE_EXAMPLES", "15")), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# -- reading reports the way a reader would -------------------------------------------------------

HEADER = re.compile(
    r"^[ \t]*(INDICATION|CLINICAL HISTORY|CLINICAL INFORMATION|HISTORY|TECHNIQUE|COMPARISON|FINDINGS|IMPRESSION|CONCLUSION)[ \t]*:",
    re.IGNORECASE | re.MULTILINE,
)
UNCERTAIN = re.compile(
    r"\b(possible|possibly|probable|probably|likely|may|might|could|cannot be excluded|cannot exclude|not excluded|"
    r"questionable|questionably|question of|suspicious for|concerning for|versus|vs|suspected|differential|"
    r"equivocal|raising the possibility)\b",
    re.IGNORECASE,
)
NEGATION_BEFORE = re.compile(
    r"\b(no|not|without|negative for|absence of|neither|free of|resolved|resolution of|no longer|normal)\b", re.IGNORECASE
)
NEGATION_AFTER = re.compile(
    r"\b(resolved|no longer|absent|not|none|normal|unremarkable|within normal limits)\b", re.IGNORECASE
)
ORGAN_LABEL = re.compile(r"^[A-Za-z][A-Za-z /]*:\s*")
PSEUDO_NEGATION = re.compile(r"\bno (significant |interval )?change\b", re.IGNORECASE)


def sections(text: str) -> dict[str, str]:
    """Section bodies by header word; a report without headers is all findings."""
    marks = list(HEADER.finditer(text))
    if not marks:
        return {"findings": text}
    out = {}
    for mark, nxt in zip(marks, marks[1:] + [None]):
        word = mark.group(1).lower()
        name = {"conclusion": "impression", "clinical history": "indication", "history": "indication"}.get(word, word)
        name = "indication" if name == "clinical information" else name
        out[name] = text[mark.end() : nxt.start() if nxt else len(text)].strip()
    return out


def sentences(text: str) -> list[str]:
    """Split on full stops (not decimal points) and line breaks."""
    return [s.strip() for s in re.split(r"\.(?!\d)|\n", PSEUDO_NEGATION.sub("", text)) if s.strip()]


def clause_at(sentence: str, pos: int) -> tuple[int, str]:
    start = max(sentence.rfind(",", 0, pos), sentence.rfind(";", 0, pos)) + 1
    ends = [i for i in (sentence.find(",", pos), sentence.find(";", pos)) if i != -1]
    return start, sentence[start : min(ends) if ends else len(sentence)]


def status_at(sentence: str, start: int, end: int) -> str:
    """positive / negative / uncertain for the mention sentence[start:end]."""
    clause_start, clause = clause_at(sentence, start)
    if UNCERTAIN.search(clause):
        return "uncertain"
    if NEGATION_BEFORE.search(sentence[:start]) or NEGATION_AFTER.search(sentence[end : clause_start + len(clause)]):
        return "negative"
    return "positive"


def mention_statuses(text: str, pattern: re.Pattern) -> set[str]:
    found = set()
    for s in sentences(text):
        for m in pattern.finditer(s):
            found.add(status_at(s, m.start(), m.end()))
    return found


STOP = set(
    "a an the there is are no not of in on at with and or to be by for findings finding show shows shown present "
    "seen imaging noted study demonstrates evidence identified absent does was any".split()
)


def stem(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "is", "us")):
        return word[:-1]
    return word


def content_words(text: str) -> set[str]:
    return {stem(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP}


def drop_repeated_label(sentence: str) -> str:
    """"Lymph nodes: no abnormal lymph nodes" names the organ first; "RCA: mild stenosis" does not."""
    label = ORGAN_LABEL.match(sentence)
    if label and content_words(label.group(0)) <= content_words(sentence[label.end() :]):
        return sentence[label.end() :]
    return sentence


def polarities(premise: str, statement: str) -> set[bool]:
    """For each premise sentence containing every content word of the statement: is it affirmed?"""
    words = content_words(statement)
    out: set[bool] = set()
    if not words:
        return out
    for s in sentences(premise):
        s = drop_repeated_label(s)
        tokens = [(m.start(), m.end(), stem(m.group(0).lower())) for m in re.finditer(r"[A-Za-z0-9]+", s)]
        hits = [(a, b) for a, b, w in tokens if w in words]
        if {w for _, _, w in tokens} >= words:
            after = re.split(r"[,;]", s[hits[-1][1] :])[0]  # a post-negation speaks for its own clause
            negated = NEGATION_BEFORE.search(s[: hits[0][0]]) or NEGATION_AFTER.search(after)
            out.add(not negated)
    return out


def negated(statement: str) -> bool:
    return bool(re.search(r"\b(no|not|absent|without)\b", statement, re.IGNORECASE))


# -- fixtures -------------------------------------------------------------------------------------


def archive(seed: int, mode: tuple[str, bool], rows: int = 48) -> list[dict]:
    split, messy = mode
    table = sample_table(rows, seed=seed, split=split, messy=messy)
    return [r for r in table.to_pylist() if r["report_text"] and r["report_text"].strip()]


# -- RADS -------------------------------------------------------------------------------------------

SYSTEM_NAME = {
    "BI-RADS": r"\bbi-?rads",
    "TI-RADS": r"\bti-?rads",
    "LI-RADS": r"\bli-?rads",
    "PI-RADS": r"\bpi-?rads",
    "O-RADS": r"\bo-?rads",
    "VI-RADS": r"\bvi-?rads|vesical imaging-rads",
    "CAD-RADS": r"\bcad-?rads",
    "NI-RADS": r"\bni-?rads",
    "Lung-RADS": r"\blung[- ]?rads",
    "GB-RADS": r"\bgb-?rads",
}
FAMILY_SYSTEM = {
    "birads": "BI-RADS", "tirads": "TI-RADS", "lirads": "LI-RADS", "pirads": "PI-RADS", "orads": "O-RADS",
    "virads": "VI-RADS", "cadrads": "CAD-RADS", "nirads": "NI-RADS", "lungrads": "Lung-RADS", "gbrads": "GB-RADS",
}  # fmt: skip


@PROPERTY
@given(seed=SEEDS, mode=MODES)
def test_rads_category_is_stated_after_the_system_name(seed, mode):
    for row in archive(seed, mode):
        system, category = row["gold__rads_assignment__system"], row["gold__rads_assignment__category"]
        if system is None:  # messy rows without text have no gold at all
            assert category is None and not (row["report_text"] or "").strip()
            continue
        assert (system == "none") == (category is None)
        assert FAMILY_SYSTEM.get(row["report_type"], "none") == system
        if system == "none":  # "No applicable RADS" is the gold answer
            assert not re.search(r"\b[A-Z]{1,3}-RADS\b", row["report_text"]), row["report_type"]
            continue
        stated = re.compile(
            rf"(?:{SYSTEM_NAME[system]}).{{0,45}}?(?<![\w-]){re.escape(category)}(?![\w-]|\.\d)", re.IGNORECASE | re.DOTALL
        )
        assert stated.search(row["report_text"]), (system, category, row["report_text"])


# -- impression ----------------------------------------------------------------------------------------


@PROPERTY
@given(seed=SEEDS, mode=MODES)
def test_impression_gold_is_the_impression_section(seed, mode):
    for row in archive(seed, mode):
        gold = row["gold__impression_generation__text"]
        found = sections(row["report_text"]).get("impression")
        if gold is None:
            assert found is None or not found, row["report_text"]
        else:
            assert found is not None and found.startswith(gold), (gold, row["report_text"])


# -- temporal -------------------------------------------------------------------------------------------

CHANGE_WORDS = {
    "worsened": r"increas|worsen|progress",
    "improved": r"decreas|improv",
    "resolved": r"resol|no longer",
    "unchanged": r"unchanged|stable|persistent",
    "new": r"\bnew|development",
}


@PROPERTY
@given(seed=SEEDS, mode=MODES)
def test_changes_are_quoted_from_the_later_report_and_have_a_prior(seed, mode):
    # all rows, text or not: with --messy a prior may have lost its text, and still be the prior
    rows = sample_table(80, seed=seed, split=mode[0], messy=mode[1]).to_pylist()
    for i, row in enumerate(rows):
        changes = row["gold__temporal_comparison__changes"]
        if changes is None:
            continue
        assert changes, "a follow-up has at least one change"
        text = row["report_text"].lower()
        for c in changes:
            assert c["cue"] in text, (c, text)
            assert re.search(CHANGE_WORDS[c["change"]], c["cue"]), c
            assert set(content_words(c["entity"])) & set(content_words(c["cue"])), c
        priors = [
            r for r in rows[:i] if r["patient_id"] == row["patient_id"] and r["modality"] == row["modality"]
        ]
        priors = [r for r in priors if r["report_id"] != row["report_id"]]  # not its own re-export
        assert priors and priors[-1]["study_date"] < row["study_date"]
        assert priors[-1]["gold__temporal_comparison__changes"] is None
        comparison = sections(row["report_text"]).get("comparison", row["report_text"])
        assert re.search(r"prior|previous|dated|compared|\d", comparison, re.IGNORECASE), row["report_text"]


# -- NER ------------------------------------------------------------------------------------------------------


@PROPERTY
@given(seed=SEEDS, mode=MODES)
def test_entities_occur_in_the_text_with_their_certainty(seed, mode):
    for row in archive(seed, mode):
        entities = row["gold__radiology_ner__entities"]
        if row["report_type"] in ("chest_xr", "onc_ct"):
            assert entities
        text = row["report_text"].lower()
        for e in entities or []:
            assert e["label"] in ("ANAT-DP", "OBS-DP", "OBS-U", "OBS-DA")
            assert e["text"] and e["text"] in text, (e, text)
            pattern = re.compile(r"(?<![a-z])" + re.escape(e["text"]) + r"(?![a-z])")
            statuses = mention_statuses(text, pattern)
            if e["label"] == "OBS-DA":
                assert "negative" in statuses, (e, text)
            if e["label"] == "OBS-U":
                assert "uncertain" in statuses, (e, text)


# -- N and M staging ------------------------------------------------------------------------------------------

STATION = re.compile(
    r"\b(?:(right|left) (hilar|interlobar|lower paratracheal|upper paratracheal|supraclavicular)|(subcarinal)|"
    r"(aortopulmonary window)|station (\d+)([RL]?))\b",
    re.IGNORECASE,
)
CODE_SITE = {"10": "hilar", "11": "interlobar", "4": "lower paratracheal", "2": "upper paratracheal", "1": "supraclavicular"}


def node_level(side: str, station_side: str | None, site: str) -> int:
    """IASLC/TNM 8 for a lung primary on `side`."""
    if site == "supraclavicular":
        return 3
    if site == "subcarinal":
        return 2
    if site == "aortopulmonary window":
        return 2 if side == "left" else 3
    same = station_side == side
    if site in ("hilar", "interlobar"):
        return 1 if same else 3
    return 2 if same else 3


def stations_in(sentence: str):
    for m in STATION.finditer(sentence):
        if m.group(2):
            yield m.group(1).lower(), m.group(2).lower()
        elif m.group(3):
            yield None, "subcarinal"
        elif m.group(4):
            yield None, "aortopulmonary window"
        else:
            code, letter = m.group(5), m.group(6).upper()
            if code == "7":
                yield None, "subcarinal"
            elif code == "5":
                yield None, "aortopulmonary window"
            elif code in CODE_SITE:
                yield {"R": "right", "L": "left"}.get(letter), CODE_SITE[code]


def n_stage_from_text(text: str) -> str:
    primary = re.search(r"(right|left) (upper|middle|lower) lobe[^.\n]*\bmass\b|\bmass\b[^.\n]*(right|left) (upper|middle|lower) lobe|(lingula)", text, re.IGNORECASE)
    side = next((g.lower() for g in primary.groups() if g and g.lower() in ("right", "left")), "left")
    level = 0
    for s in sentences(text):
        if not re.search(r"lymph node|lymphadenopathy", s, re.IGNORECASE):
            continue
        if NEGATION_BEFORE.search(s) or re.search(r"\bresolved\b", s, re.IGNORECASE):
            continue
        sizes = [float(x) for x in re.findall(r"(\d+\.\d+) cm", s, re.IGNORECASE)]
        if re.search(r"enlarged|lymphadenopathy", s, re.IGNORECASE) or any(x >= 1.0 for x in sizes):
            for station_side, site in stations_in(s):
                level = max(level, node_level(side, station_side, site))
    return f"N{level}"


def m_stage_from_text(text: str) -> str | None:
    statuses = mention_statuses(text, re.compile(r"metasta\w*", re.IGNORECASE))
    if "positive" in statuses:
        return "M1"
    return "M0" if "negative" in statuses else None


@PROPERTY
@given(seed=SEEDS, mode=MODES)
def test_n_and_m_stage_follow_from_the_nodes_and_lesions_described(seed, mode):
    for row in archive(seed, mode, rows=64):
        n, involvement, m = (row[f"gold__{k}"] for k in ("n_staging__stage", "n_staging__node_involvement", "m_staging__stage"))
        if row["report_type"] != "onc_ct":
            assert n is None and involvement is None and m is None
            continue
        assert involvement == ("negative" if n == "N0" else "positive")
        assert n_stage_from_text(row["report_text"]) == n, (n, row["report_text"])
        assert m_stage_from_text(row["report_text"]) == m, (m, row["report_text"])


# -- NLI ----------------------------------------------------------------------------------------------------------


@PROPERTY
@given(seed=SEEDS, mode=MODES)
def test_hypothesis_label_matches_the_findings(seed, mode):
    for row in archive(seed, mode):
        label, hypothesis = row["gold__radiology_nli__label"], row["hypothesis"]
        assert label in ("entailment", "contradiction", "neutral")
        findings = sections(row["report_text"]).get("findings", row["report_text"])
        affirmed = polarities(findings, hypothesis)
        if label == "neutral":
            assert not affirmed, (hypothesis, findings)
        else:
            expected = (not negated(hypothesis)) == (label == "entailment")
            assert expected in affirmed, (label, hypothesis, findings)


# -- abnormality detection (CheXpert) -----------------------------------------------------------------------------

CHEXPERT_MENTION = {
    "atelectasis": r"atelectasis",
    "cardiomegaly": r"cardiomegaly|\bheart\b|cardiac silhouette",
    "consolidation": r"consolidation",
    "edema": r"\bedema\b",
    "enlarged_cardiomediastinum": r"mediastin\w*",
    "fracture": r"fracture",
    "lung_lesion": r"\bnodule\b|\bmass\b",
    "lung_opacity": r"opacit\w*|airspace disease",
    "pleural_effusion": r"effusion",
    "pleural_other": r"pleural (thickening|scarring|plaque)",
    "pneumonia": r"pneumonia",
    "pneumothorax": r"pneumothorax|\bptx\b",
    "support_devices": r"\b(tube|catheter|picc|pacemaker|ett|line|leads?)\b",
}


@PROPERTY
@given(seed=SEEDS, mode=MODES)
def test_chexpert_labels_match_mentions(seed, mode):
    for row in archive(seed, mode):
        gold = {k: row[f"gold__abnormality_detection__{k}"] for k in [*CHEXPERT_MENTION, "no_finding"]}
        if row["report_type"] != "chest_xr":
            assert set(gold.values()) == {None}
            continue
        assert any(v is not None for k, v in gold.items() if k != "no_finding"), "mentions at least one label"
        text = row["report_text"]
        for label, pattern in CHEXPERT_MENTION.items():
            found = mention_statuses(text, re.compile(pattern, re.IGNORECASE))
            expected = gold[label]
            if expected is None:
                assert not found, (label, text)
            elif expected == "positive":
                assert "positive" in found, (label, text)
            else:
                assert expected in found and "positive" not in found, (label, expected, found, text)
        sick = [k for k, v in gold.items() if v in ("positive", "uncertain") and k not in ("support_devices", "no_finding")]
        assert gold["no_finding"] in (None, "positive")
        assert (gold["no_finding"] == "positive") == (not sick)


# -- QA ------------------------------------------------------------------------------------------------------------


@PROPERTY
@given(seed=SEEDS, mode=MODES)
def test_answers_can_be_read_off_the_report(seed, mode):
    for row in archive(seed, mode):
        question, answer, text = row["question"], row["gold__radiology_qa__answer"], row["report_text"]
        assert question.endswith((".", "?")) and answer
        if answer in ("Yes", "No"):
            subject = re.sub(r"^(is there|does the study show|is|was)\s+|\s+(present|identified)\?$|\?$", "", question, flags=re.IGNORECASE)
            assert (answer == "Yes") in polarities(sections(text).get("findings", text), subject), (question, answer, text)
        else:
            assert answer.lower() in text.lower(), (question, answer, text)


# -- across heads ---------------------------------------------------------------------------------------------------


def test_every_head_has_gold_in_a_modest_archive():
    rows = sample_table(400, seed=11).to_pylist()
    heads = {
        "rads": "gold__rads_assignment__category",
        "impression": "gold__impression_generation__text",
        "temporal": "gold__temporal_comparison__changes",
        "ner": "gold__radiology_ner__entities",
        "n": "gold__n_staging__stage",
        "m": "gold__m_staging__stage",
        "nli": "gold__radiology_nli__label",
        "chexpert": "gold__abnormality_detection__pleural_effusion",
        "qa": "gold__radiology_qa__answer",
    }
    for head, column in heads.items():
        assert sum(r[column] is not None for r in rows) >= 5, head
    assert {r["gold__radiology_nli__label"] for r in rows} == {"entailment", "contradiction", "neutral"}
    assert {r["gold__n_staging__stage"] for r in rows} >= {"N0", "N1", "N2", "N3"}
    assert {r["gold__m_staging__stage"] for r in rows} >= {"M0", "M1"}
    assert {c["change"] for r in rows for c in r["gold__temporal_comparison__changes"] or []} == {
        "new", "worsened", "improved", "resolved", "unchanged"
    }  # fmt: skip


@functools.cache
def systems_in_archive() -> set[str]:
    return set(sample_table(1500, seed=5, gold=True).column("gold__rads_assignment__system").to_pylist())


@pytest.mark.parametrize("system", sorted(SYSTEM_NAME))
def test_every_rads_system_occurs(system):
    assert system in systems_in_archive()
