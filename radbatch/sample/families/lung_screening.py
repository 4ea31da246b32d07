"""Low-dose CT lung cancer screening with a Lung-RADS v2022 category from the dominant nodule."""

from __future__ import annotations

from radbatch.sample.dictation import Dictation, Variants
from radbatch.sample.draft import Claim, Draft, article
from radbatch.sample.families.chest_terms import LOBES
from radbatch.sample.families.rads import recommend, state_category
from radbatch.sample.qa import ask

_MEANING = {
    "0": "incomplete",
    "1": "negative",
    "2": "benign appearance or behavior",
    "3": "probably benign",
    "4A": "suspicious",
    "4B": "very suspicious",
    "4X": "very suspicious, additional features",
}
_ACTION = {
    "0": "comparison with prior chest CT when available",
    "1": "continued annual screening with LDCT in 12 months",
    "2": "continued annual screening with LDCT in 12 months",
    "3": "LDCT in 6 months",
    "4A": "LDCT in 3 months",
    "4B": "diagnostic chest CT, PET/CT, or tissue sampling",
    "4X": "diagnostic chest CT, PET/CT, or tissue sampling",
}
_NODULE = Variants(
    "{size} mm {kind} {obs} in the {lobe}{extra}",
    "there is a {size} mm {kind} {obs} in the {lobe}{extra}",
    train=("{lobe}: {kind} {obs}, {size} mm{extra}",),
    test=("dominant {kind} {obs} in the {lobe} with mean diameter {size} mm{extra}",),
)


def lungrads_category(kind: str, size: float, solid: float, suspicious: bool) -> str:
    """v2022 baseline screening; `solid` is the solid component of a part-solid nodule (mm)."""
    if kind == "solid":
        cat = "2" if size < 6 else "3" if size < 8 else "4A" if size < 15 else "4B"
    elif kind == "part-solid":
        cat = "2" if size < 6 else "3" if solid < 6 else "4A" if solid < 8 else "4B"
    else:
        cat = "2" if size < 30 else "3"
    return "4X" if suspicious and cat in ("3", "4A", "4B") else cat


def draft(d: Dictation, patient, study, prior) -> Draft:
    out = Draft(family="lungrads", modality="CT CHEST LOW DOSE", exam="CT CHEST LOW DOSE LUNG CANCER SCREENING")
    out.indication = d.pick((f"{d.randint(20, 60)} pack-year smoking history, annual screening", "lung cancer screening", "former smoker, baseline screening"))
    out.technique = "low-dose non-contrast CT of the chest"
    r = d.rng.random()
    if r < 0.05:
        out.findings.append(("Lungs", f"the {d.anat('lung bases')} were not imaged due to incomplete coverage"))
        cat = "0"
    elif r < 0.2:
        out.findings.append(("Lungs", f"no pulmonary {d.absent('nodules')}"))
        out.claims.append(Claim("a pulmonary nodule", "pulmonary nodule", False))
        cat = "1"
    else:
        cat = _nodule(d, out)
    significant = d.random() < 0.4
    if significant:
        out.findings.append(("Other", f"moderate coronary artery {d.present('calcification')}"))
    state_category(d, out, "Lung-RADS", cat, _MEANING[cat])
    if significant:  # the S modifier: a clinically significant finding other than lung cancer
        out.assessment.append("S modifier: moderate coronary artery calcification")
    recommend(d, out, _ACTION[cat])
    out.neutrals = ("a brain metastasis", "a chronic cough", "a rib fracture")
    return out


def _nodule(d: Dictation, out: Draft) -> str:
    kind = d.pick(("solid", "solid", "solid", "part-solid", "ground-glass"))
    size = round(d.rng.uniform(3.0, 22.0) if kind != "ground-glass" else d.rng.uniform(5.0, 40.0), 1)
    solid = round(size * d.rng.uniform(0.2, 0.7), 1) if kind == "part-solid" else 0.0
    suspicious = kind != "ground-glass" and d.random() < 0.15
    extra = f" with a {solid} mm solid component" if solid else ""
    if suspicious:
        extra += " and spiculated margins" if solid else " with spiculated margins"
    lobe = d.pick(LOBES[d.pick(("right", "left"))])
    out.findings.append(("Lungs", d.say(_NODULE, size=str(size), kind=kind, obs=d.present("nodule"), lobe=d.anat(lobe), extra=extra)))
    out.claims.append(Claim(article(f"{kind} nodule"), f"{kind} nodule", True))
    out.qa.append(ask("size", f"{size} mm", thing="nodule"))
    out.qa.append(ask("location", lobe, thing="nodule"))
    out.impression.append(f"{size} mm {kind} nodule in the {lobe}")
    return lungrads_category(kind, size, solid, suspicious)
