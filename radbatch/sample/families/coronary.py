"""Coronary CT angiography with a CAD-RADS 2.0 category from the worst stenosis per vessel."""

from __future__ import annotations

from radbatch.sample.dictation import Dictation, Variants
from radbatch.sample.draft import Claim, Draft
from radbatch.sample.families.rads import recommend, state_category
from radbatch.sample.qa import ask

_VESSELS = ("left main", "LAD", "left circumflex", "RCA")
# grade -> (descriptor, range); grade 0 = no plaque
_GRADES = {
    1: ("minimal", "1-24%"),
    2: ("mild", "25-49%"),
    3: ("moderate", "50-69%"),
    4: ("severe", "70-99%"),
}
_MEANING = {
    "0": "no plaque or stenosis",
    "1": "minimal non-obstructive CAD",
    "2": "mild non-obstructive CAD",
    "3": "moderate stenosis",
    "4A": "severe stenosis",
    "4B": "left main or three-vessel obstructive disease",
    "5": "total coronary occlusion",
    "N": "non-diagnostic study",
}
_ACTION = {
    "0": "no further cardiac evaluation",
    "1": "preventive therapy and risk factor modification",
    "2": "preventive therapy and risk factor modification",
    "3": "functional assessment",
    "4A": "invasive coronary angiography or functional assessment",
    "4B": "invasive coronary angiography",
    "5": "invasive coronary angiography and viability assessment",
    "N": "alternative evaluation",
}
_STENOSIS = Variants(
    "{vessel}: {plaque} plaque with {grade} ({range}) {obs}",
    "{plaque} plaque in the {vessel} causing {grade} {obs} ({range})",
    train=("{vessel} - {plaque} plaque, {grade} {obs} ({range})",),
    test=("{grade} ({range}) {obs} of the {vessel} due to {plaque} plaque",),
)


def cadrads_category(grades: dict[str, int]) -> str:
    """Grade 5 = occlusion. 4B: left main >= 50% or three vessels >= 70%."""
    top = max(grades.values())
    if top == 5:
        return "5"
    if grades["left main"] >= 3 or sum(g >= 4 for g in grades.values()) >= 3:
        return "4B"
    return "4A" if top == 4 else str(top)


def draft(d: Dictation, patient, study, prior) -> Draft:
    out = Draft(family="cadrads", modality="CT CORONARY ANGIOGRAM", exam="CTA CORONARY ARTERIES")
    out.indication = d.pick(("atypical chest pain", "chest pain, intermediate pretest probability", "dyspnea, evaluate for coronary disease"))
    out.technique = f"prospectively ECG-gated coronary CT angiography, heart rate {d.randint(52, 68)} bpm"
    out.findings.append(("Calcium", f"coronary artery calcium score (Agatston): {d.randint(0, 900)}"))
    if d.random() < 0.05:
        vessel = d.pick(_VESSELS[1:])
        out.findings.append(("Coronaries", f"severe motion {d.present('artifact')} limits evaluation of the {d.anat(vessel)}"))
        cat = "N"
    else:
        cat = _vessels(d, out)
    out.findings.append(("Other", d.pick(("no pericardial effusion", "normal left ventricular size", "the visualized lungs are clear"))))
    state_category(d, out, "CAD-RADS", cat, _MEANING[cat])
    recommend(d, out, _ACTION[cat])
    out.neutrals = ("a prior myocardial infarction", "atrial fibrillation", "an aortic valve replacement")
    return out


def _vessels(d: Dictation, out: Draft) -> str:
    top = d.pick((0, 1, 2, 2, 3, 3, 4, 4, 5))
    grades = {v: d.randint(0, top) for v in _VESSELS}
    grades["left main"] = min(grades["left main"], 2 if d.random() < 0.85 else top)
    worst = d.pick(_VESSELS[1:])
    grades[worst] = top
    for vessel, grade in grades.items():
        out.findings.append(("Coronaries", _vessel_text(d, vessel, grade)))
    if top == 0:
        out.claims.append(Claim("plaque", "plaque", False))
    else:
        word = "occlusion" if top == 5 else "stenosis"
        out.claims.append(Claim(f"{'a total' if top == 5 else 'a ' + _GRADES[top][0]} {word}", f"{word} of the {worst}", True))
        if list(grades.values()).count(top) == 1:  # otherwise "the most severe" has no single answer
            out.qa.append(ask("location", worst, thing="most severe lesion"))
        out.impression.append(f"{'total occlusion' if top == 5 else _GRADES[top][0] + ' stenosis'} of the {worst}")
    return cadrads_category(grades)


def _vessel_text(d: Dictation, vessel: str, grade: int) -> str:
    anat = d.anat(vessel)
    if grade == 0:
        return f"{anat}: no {d.absent('plaque')} or {d.absent('stenosis')}"
    if grade == 5:
        return f"{anat}: total {d.present('occlusion')} by {d.pick(('noncalcified', 'mixed'))} plaque"
    plaque = d.pick(("calcified", "noncalcified", "mixed"))
    grade_word, span = _GRADES[grade]
    return d.say(_STENOSIS, vessel=anat, plaque=plaque, grade=grade_word, range=span, obs=d.present("stenosis"))
