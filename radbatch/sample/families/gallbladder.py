"""Gallbladder ultrasound for wall thickening with a GB-RADS category."""

from __future__ import annotations

from radbatch.sample.dictation import Dictation, Options
from radbatch.sample.draft import Claim, Draft
from radbatch.sample.families.rads import recommend, state_category
from radbatch.sample.qa import ask

_MEANING = {
    "0": "inadequate assessment",
    "1": "normal",
    "2": "benign",
    "3": "equivocal",
    "4": "likely malignant",
    "5": "highly likely malignant",
}
_WALL = {
    "2": Options(
        "diffuse symmetric {obs} measuring {mm} mm with intramural cysts, consistent with adenomyomatosis",
        "circumferential layered {obs} measuring {mm} mm",
        test=("smooth symmetric {obs} ({mm} mm) with intramural echogenic foci and comet-tail artifacts",),
    ),
    "3": Options(
        "focal {obs} measuring {mm} mm in the fundus with a preserved interface with the liver",
        "asymmetric {obs} measuring {mm} mm without intramural features",
    ),
    "4": Options(
        "focal {obs} measuring {mm} mm with loss of the normal wall layering",
        "asymmetric {obs} measuring {mm} mm with an indistinct interface with the liver",
    ),
    "5": Options(
        "irregular {obs} measuring {mm} mm with infiltration of the adjacent liver",
        "mass-forming {obs} measuring {mm} mm replacing the gallbladder lumen",
    ),
}
_ACTION = {
    "0": "repeat ultrasound after 6 hours of fasting",
    "1": "no further imaging",
    "2": "no further imaging",
    "3": "follow-up ultrasound or MRI",
    "4": "contrast-enhanced CT or MRI and surgical consultation",
    "5": "contrast-enhanced CT or MRI and surgical oncology referral",
}


def draft(d: Dictation, patient, study, prior) -> Draft:
    out = Draft(family="gbrads", modality="US ABDOMEN", exam="US ABDOMEN RIGHT UPPER QUADRANT")
    out.indication = d.pick(("right upper quadrant pain", "gallbladder wall thickening on CT", "abnormal liver function tests"))
    out.technique = "grayscale and color Doppler ultrasound of the right upper quadrant"
    cat = d.pick(("0", "1", "1", "2", "2", "3", "4", "5"))
    anat = d.anat("gallbladder")
    if cat == "0":
        out.findings.append(("Gallbladder", f"the {anat} is contracted; the patient was not fasting and the wall cannot be assessed"))
    elif cat == "1":
        out.findings.append(("Gallbladder", f"the {anat} is distended with a normal wall and no {d.absent('wall thickening')}"))
        out.claims.append(Claim("wall thickening", "wall thickening", False))
    else:
        mm = str(d.randint(4, 9) if cat in ("2", "3") else d.randint(8, 18))
        wall = d.choose(_WALL[cat]).format(obs=d.present("wall thickening"), mm=mm)
        out.findings.append(("Gallbladder", f"the {anat} shows {wall}"))
        out.claims.append(Claim("wall thickening", "wall thickening", True))
        out.qa.append(ask("size", f"{mm} mm", thing="gallbladder wall thickening"))
        out.impression.append(f"gallbladder wall thickening, {mm} mm")
    stones = d.random() < 0.4
    out.findings.append(("Gallbladder", f"{'multiple mobile ' if stones else 'no '}{(d.present if stones else d.absent)('gallstones')}"))
    out.claims.append(Claim("a gallstone", "gallstone", stones))
    out.findings.append(("Other", d.pick(("the common bile duct measures 4 mm", "the liver is normal in echotexture", "the pancreas is obscured by bowel gas"))))
    state_category(d, out, "GB-RADS", cat, _MEANING[cat])
    recommend(d, out, _ACTION[cat])
    out.neutrals = ("a renal cyst", "pancreatitis", "a history of alcohol use")
    return out
