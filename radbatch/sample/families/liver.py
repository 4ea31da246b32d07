"""Liver CT/MRI in an at-risk patient with a LI-RADS category (v2018 diagnostic table for LR-3..5)."""

from __future__ import annotations

from radbatch.sample.dictation import Dictation, Options, Variants
from radbatch.sample.draft import Claim, Draft
from radbatch.sample.families.rads import recommend, state_category
from radbatch.sample.qa import ask

_MEANING = {
    "LR-1": "definitely benign",
    "LR-2": "probably benign",
    "LR-3": "intermediate probability of malignancy",
    "LR-4": "probably HCC",
    "LR-5": "definitely HCC",
    "LR-M": "probably or definitely malignant, not HCC specific",
    "LR-TIV": "tumor in vein",
    "LR-TR nonviable": "treated, nonviable",
    "LR-TR equivocal": "treated, equivocal",
    "LR-TR viable": "treated, viable",
}
_ACTION = {
    "LR-1": "continued surveillance in 6 months",
    "LR-2": "continued surveillance in 6 months",
    "LR-3": "repeat multiphase imaging in 3 to 6 months",
    "LR-4": "multidisciplinary discussion and repeat imaging in 3 months",
    "LR-5": "multidisciplinary discussion for treatment",
    "LR-M": "biopsy of the observation",
    "LR-TIV": "multidisciplinary discussion",
    "LR-TR nonviable": "post-treatment imaging in 3 months",
    "LR-TR equivocal": "repeat multiphase imaging in 3 months",
    "LR-TR viable": "multidisciplinary discussion for retreatment",
}
_OBSERVATION = Variants(
    "{size} mm {obs} in {seg} {features}",
    "in {seg} there is a {size} mm {obs} {features}",
    train=("{seg} {obs}, {size} mm, {features}",),
    test=("{obs} measuring {size} mm in {seg}, {features}",),
)
_BACKGROUND = Options(
    "the liver is cirrhotic with a nodular contour",
    "cirrhotic liver morphology with caudate hypertrophy",
    train=("nodular liver surface consistent with cirrhosis",),
    test=("the liver has a shrunken, nodular appearance",),
)


def lirads_category(aphe: bool, size_mm: int, features: int) -> str:
    """LI-RADS v2018 CT/MRI diagnostic table (untreated observation without LR-M or TIV features)."""
    if not aphe:
        if features >= 2:
            return "LR-4"
        return "LR-4" if features == 1 and size_mm >= 20 else "LR-3"
    if size_mm < 10:
        return "LR-3" if features == 0 else "LR-4"
    if size_mm < 20:
        return "LR-3" if features == 0 else "LR-5"  # washout or growth; capsule alone is handled below
    return "LR-4" if features == 0 else "LR-5"


def draft(d: Dictation, patient, study, prior) -> Draft:
    modality = d.pick(("CT LIVER", "MR LIVER"))
    out = Draft(family="lirads", modality=modality, exam=f"{modality} MULTIPHASE")
    out.technique = "multiphase contrast-enhanced " + ("CT" if modality == "CT LIVER" else "MRI") + " of the liver"
    out.findings.append(("Liver", d.choose(_BACKGROUND)))
    seg = f"segment {d.randint(2, 8)}"
    r = d.rng.random()
    if r < 0.15:
        cat = _treated(d, out, seg)
        out.indication = "hepatocellular carcinoma status post TACE, follow-up"
    else:
        out.indication = d.pick(("cirrhosis, HCC surveillance", "hepatitis B, liver observation on ultrasound", "NASH cirrhosis, surveillance"))
        cat = _tiv(d, out) if r < 0.21 else _lr_m(d, out, seg) if r < 0.28 else _benign(d, out, seg) if r < 0.45 else _observation(d, out, seg)
    out.findings.append(("Other", f"the portal veins are {d.present('patent')}" if cat != "LR-TIV" else "no ascites"))
    state_category(d, out, "LI-RADS", cat, _MEANING[cat])
    recommend(d, out, _ACTION[cat])
    out.neutrals = ("a gallstone", "a renal stone", "a hepatitis C infection")
    return out


def _observation(d: Dictation, out: Draft, seg: str) -> str:
    size = d.randint(6, 35)
    aphe = d.random() < 0.7
    washout, capsule, growth = d.random() < 0.5, d.random() < 0.4, d.random() < 0.15
    n_features = washout + capsule + growth
    cat = lirads_category(aphe, size, n_features)
    if aphe and 10 <= size < 20 and n_features == 1 and capsule:
        cat = "LR-4"  # v2018: capsule as the only feature of a 10-19 mm APHE observation
    present, absent = [], []
    for flag, word in ((aphe, "arterial phase hyperenhancement"), (washout, "washout"), (capsule, "enhancing capsule")):
        if flag:
            present.append(d.present(word))
        else:
            absent.append(d.absent(word))
    if growth:
        present.append(d.present("threshold growth"))
    features = ("with " + " and ".join(present)) if present else ""
    if absent:
        features += (", without " if present else "without ") + " or ".join(absent)
    out.findings.append(("Liver", d.say(_OBSERVATION, size=str(size), obs=d.present("observation"), seg=d.anat(seg), features=features)))
    out.claims.append(Claim("washout", "washout", washout))
    out.qa.append(ask("size", f"{size} mm", thing="observation"))
    out.qa.append(ask("location", seg, thing="observation"))
    out.impression.append(f"{size} mm observation in {seg}")
    return cat


def _benign(d: Dictation, out: Draft, seg: str) -> str:
    size = d.randint(5, 25)
    if d.random() < 0.5:
        out.findings.append(("Liver", f"{size} mm {d.present('simple cyst')} in {d.anat(seg)}"))
        out.claims.append(Claim("a simple cyst", "simple cyst", True))
        cat = "LR-1"
    else:
        out.findings.append(("Liver", f"{size} mm {d.present('nodule')} in {d.anat(seg)} without arterial phase hyperenhancement, probably a regenerative nodule"))
        out.claims.append(Claim("a nodule", "nodule", True))
        cat = "LR-2"
    out.qa.append(ask("location", seg, thing="lesion"))
    return cat


def _lr_m(d: Dictation, out: Draft, seg: str) -> str:
    size = d.randint(12, 45)
    text = f"{size} mm {d.present('targetoid observation')} in {d.anat(seg)} with rim arterial phase hyperenhancement and peripheral washout"
    out.findings.append(("Liver", text))
    out.claims.append(Claim("a targetoid observation", "targetoid observation", True))
    out.qa.append(ask("size", f"{size} mm", thing="observation"))
    return "LR-M"


def _tiv(d: Dictation, out: Draft) -> str:
    vein = d.pick(("main portal vein", "right portal vein", "left portal vein"))
    out.findings.append(("Vessels", f"enhancing soft tissue within the {d.anat(vein)}, consistent with {d.present('tumor in vein')}"))
    out.claims.append(Claim("tumor in vein", "tumor in vein", True))
    out.qa.append(ask("location", vein, thing="tumor in vein"))
    return "LR-TIV"


def _treated(d: Dictation, out: Draft, seg: str) -> str:
    status = d.pick(("nonviable", "nonviable", "equivocal", "viable"))
    zone = f"treatment zone in {d.anat(seg)}"
    if status == "nonviable":
        text = f"no residual arterial phase {d.absent('enhancement')} in the {zone}"
        out.claims.append(Claim("residual enhancement", "residual enhancement", False))
    elif status == "viable":
        size = d.randint(8, 30)
        text = f"nodular arterial phase {d.present('hyperenhancement')} with washout along the margin of the {zone}, measuring {size} mm"
        out.qa.append(ask("size", f"{size} mm", thing="residual tumor"))
    else:
        text = f"equivocal {d.uncertain('enhancement')} along the {zone}, atypical for expected post-treatment change"
    out.findings.append(("Liver", text))
    return f"LR-TR {status}"
