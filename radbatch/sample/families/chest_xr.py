"""Chest radiographs: CheXpert labels decided first, then written; follow-ups track changes.

A report is a list of patterns (one finding, a finding with its differential, a device); each pattern
can be written more than once (findings, then impression) without changing any label's status.
"""

from __future__ import annotations

import functools

from radbatch.sample.changes import change_sentence, cue_only
from radbatch.sample.dictation import ABSENT, PRESENT, Dictation, Options
from radbatch.sample.draft import Claim, Draft, article
from radbatch.sample.families import chest_scenarios as scenarios
from radbatch.sample.families.chest_terms import NEG, POS, UNC, Fact, lobe, support_device
from radbatch.sample.qa import ask

LABELS = (
    "atelectasis", "cardiomegaly", "consolidation", "edema", "enlarged_cardiomediastinum", "fracture",
    "lung_lesion", "lung_opacity", "no_finding", "pleural_effusion", "pleural_other", "pneumonia",
    "pneumothorax", "support_devices",
)  # fmt: skip
_GROUP = {
    "support_devices": "Devices",
    "pleural_effusion": "Pleura",
    "pneumothorax": "Pleura",
    "pleural_other": "Pleura",
    "cardiomegaly": "Cardiovascular",
    "enlarged_cardiomediastinum": "Cardiovascular",
    "fracture": "Bones",
}
_NOUN = {  # bare finding for claims and neutral hypotheses
    "atelectasis": "atelectasis", "cardiomegaly": "cardiomegaly", "consolidation": "consolidation",
    "edema": "pulmonary edema", "enlarged_cardiomediastinum": "mediastinal widening", "fracture": "rib fracture",
    "lung_lesion": "pulmonary nodule", "lung_opacity": "lung opacity", "pleural_effusion": "pleural effusion",
    "pleural_other": "pleural thickening", "pneumonia": "pneumonia", "pneumothorax": "pneumothorax",
}  # fmt: skip
# nouns used without an article ("there is atelectasis"), by their last word
_MASS_WORDS = {"atelectasis", "cardiomegaly", "consolidation", "edema", "pneumonia", "thickening", "scarring", "widening", "disease"}
_NOT_NOUNS = {"enlarged", "widened", "normal", "clear"}


_INDICATIONS = Options(
    "shortness of breath", "cough and fever", "chest pain", "hypoxia", "dyspnea on exertion",
    train=("sob", "preoperative evaluation"),
    test=("worsening breathlessness", "pleuritic chest pain"),
)  # fmt: skip
_TWO_VIEWS = Options("PA and lateral views of the chest", train=("PA/LAT chest",), test=("frontal and lateral chest radiographs",))
_PORTABLE = Options("single portable AP view of the chest", train=("portable AP chest",), test=("one frontal portable radiograph of the chest",))
_DEVICE_REASON = {"endotracheal tube": "intubated, check tube position", "enteric tube": "enteric tube placement", "chest tube": "chest tube check"}
_NORMAL_IMPRESSION = Options(
    "no acute cardiopulmonary process",
    "no acute cardiopulmonary abnormality",
    train=("normal chest radiograph",),
    test=("no radiographic evidence of acute cardiopulmonary disease",),
)


def draft(d: Dictation, patient, study, prior: list[Fact] | None) -> Draft:
    out = Draft(family="chest_xr", modality="XR CHEST")
    portable = d.random() < 0.4
    out.exam = "XR CHEST 1 VIEW PORTABLE" if portable else d.pick(("XR CHEST 2 VIEWS", "CHEST PA AND LATERAL"))
    if prior is not None:
        report = scenarios.follow_up(d, prior)
    else:
        report = scenarios.fresh(d, trackable=study.role == "prior")
    _write(d, out, report, follow_up=prior is not None)
    out.indication = _indication(d, patient, report)
    out.technique = d.choose(_PORTABLE if portable else _TWO_VIEWS)
    out.chexpert = _chexpert(report)
    out.state = [f for f in report.facts.values() if f.status == POS]
    return out


def _indication(d: Dictation, patient, report: scenarios.ChestReport) -> str:
    device = report.facts.get("support_devices")
    if device is not None:
        return _DEVICE_REASON.get(device.detail, "line placement")
    if "fracture" in report.facts:
        side = report.facts["fracture"].side or "left"
        reason = d.pick((f"fall with {side} chest wall pain", "trauma, chest wall pain"))
    else:
        reason = d.choose(_INDICATIONS)
    if d.random() < 0.4:
        who = "man" if patient.sex == "M" else "woman"
        return f"{patient.age}-year-old {who} with {reason}"
    return reason


def _write(d: Dictation, out: Draft, report: scenarios.ChestReport, follow_up: bool) -> None:
    d.section = "findings"
    changes: list[dict[str, str]] = []
    out.changes = changes if follow_up else None
    for pattern in report.patterns:
        start = len(d.entities)
        if pattern.change:
            text, record = change_sentence(d, pattern.change, pattern.np(d), pattern.entity, pattern.facts[0].severity)
            changes.append(record)
            out.qa.append(ask("change", record["cue"], thing=record["entity"]))
        else:
            text = _pattern_text(d, pattern, out)
        out.findings.append((_GROUP.get(pattern.facts[0].label, "Lungs"), text))
        _claim(d, out, pattern.facts[0], start)
    negatives, listed = scenarios.negative_sentences(d, report)
    for sentence in negatives:
        out.findings.append(("Lungs", sentence))
    for word in listed:
        _add_claim(out, word, present=False)
    for sentence in scenarios.distractors(d):
        out.findings.append(("Other", sentence))
    d.section = "impression"
    out.impression = _impression(d, report)
    out.neutrals = functools.partial(_neutrals, report)


def _claim(d: Dictation, out: Draft, f: Fact, start: int) -> None:
    """A claim quoting the finding word the sentence used ("effusion", "PTX", "airspace consolidation")."""
    if f.status == UNC or f.label == "support_devices":
        return
    for _, text, label in d.entities[start:]:
        if label in (PRESENT, ABSENT):
            _add_claim(out, text, present=f.status == POS)
            return


def _add_claim(out: Draft, word: str, present: bool) -> None:
    key = (word, present)
    if key not in _CLAIMS:
        _CLAIMS[key] = _claim_of(word, present)
    claim = _CLAIMS[key]
    if claim is not None:
        out.claims.append(claim)


# (finding word, present) -> Claim, or None for words that make none; the words come from the fixed
# vocabulary of chest_terms and chest_scenarios, so this stays small
_CLAIMS: dict[tuple[str, bool], Claim | None] = {}


def _claim_of(word: str, present: bool) -> Claim | None:
    if word in _NOT_NOUNS or " or " in word:
        return None
    noun = word[:-3] + "y" if word.endswith("ies") else word[:-1] if word.endswith("s") and not word.endswith(("is", "ss")) else word
    last = noun.split()[-1]
    phrase = noun if last in _MASS_WORDS else article(noun)
    return Claim(phrase, noun, present)


def _pattern_text(d: Dictation, pattern, out: Draft) -> str:
    f = pattern.facts[0]
    if f.label == "support_devices":
        text, tip = support_device(d, f)
        if tip:
            out.qa.append(ask("tip", tip, thing="endotracheal tube"))
        return text
    text = scenarios.pattern_text(d, pattern)
    if f.status == POS:
        _extractive(d, f, out)
    return text


def _extractive(d: Dictation, f: Fact, out: Draft) -> None:
    if f.label == "lung_lesion":
        noun = "mass" if float(f.detail) >= 3 else "nodule"
        out.qa.append(ask("size", f"{f.detail} cm", thing=noun))
        out.qa.append(ask("location", lobe(d, f.loc), thing=noun))
    elif f.label in ("pleural_effusion", "pneumothorax") and f.side != "bilateral":
        out.qa.append(ask("side", f.side, thing=_NOUN[f.label]))
    elif f.label == "consolidation":
        out.qa.append(ask("location", lobe(d, f.loc), thing="consolidation"))
    elif f.label == "fracture":
        out.qa.append(ask("location", f"{f.side} {f.detail}", thing="fracture"))


def _impression(d: Dictation, report: scenarios.ChestReport) -> list[str]:
    items: list[str] = []
    for pattern in report.patterns:
        if len(items) == 4:  # stop before writing, so no entity is recorded for an unwritten item
            break
        if pattern.change:
            items.append(cue_only(d, pattern.change, pattern.np(d)))
        elif pattern.facts[0].label != "support_devices" and pattern.facts[0].status != NEG:
            items.append(scenarios.pattern_text(d, pattern))
    if not items:
        items.append(d.choose(_NORMAL_IMPRESSION))
        report.covered.update(_NOUN)
    return items


def _neutrals(report: scenarios.ChestReport) -> list[str]:
    """Findings the report never addresses; a normal study addresses them all."""
    if not any(f.status in (POS, UNC) and f.label != "support_devices" for f in report.facts.values()):
        return []
    return [
        noun if noun.split()[-1] in _MASS_WORDS else article(noun)
        for label, noun in _NOUN.items()
        if label not in report.facts and label not in report.covered
    ]


def _chexpert(report: scenarios.ChestReport) -> dict[str, str | None]:
    gold: dict[str, str | None] = dict.fromkeys(LABELS)
    for label, f in report.facts.items():
        gold[label] = f.status
    sick = any(s in (POS, UNC) for k, s in gold.items() if k != "support_devices" and s)
    gold["no_finding"] = None if sick else POS
    return gold
