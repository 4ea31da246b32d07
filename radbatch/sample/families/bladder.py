"""Bladder MRI with a VI-RADS score: likelihood that a bladder tumor invades the muscularis propria."""

from __future__ import annotations

from radbatch.sample.dictation import Dictation, Variants
from radbatch.sample.draft import Claim, Draft
from radbatch.sample.families.rads import recommend, state_category
from radbatch.sample.qa import ask

_MEANING = {
    "1": "muscle invasion highly unlikely",
    "2": "muscle invasion unlikely",
    "3": "muscle invasion equivocal",
    "4": "muscle invasion likely",
    "5": "invasion of muscle and beyond the bladder very likely",
}
_WALL = {
    "1": "with a continuous low signal intensity line of the muscularis propria",
    "2": "with a stalk and a thickened inner layer; the low signal intensity muscularis propria is continuous",
    "3": "without a stalk or thickened inner layer, and no clear disruption of the low signal intensity muscularis propria",
    "4": "with intermediate signal tumor interrupting the low signal intensity muscularis propria",
    "5": "with tumor extending through the entire bladder wall",
}
_TUMOR = Variants(
    "{size} cm papillary {obs} along the {loc} {wall}",
    "there is a {size} cm {obs} arising from the {loc} {wall}",
    train=("{loc}: {size} cm exophytic {obs} {wall}",),
    test=("sessile {obs} of the {loc} measuring {size} cm, {wall}",),
)
_ACTION = {
    "1": "transurethral resection as planned",
    "2": "transurethral resection as planned",
    "3": "repeat transurethral resection for staging",
    "4": "multidisciplinary discussion regarding radical cystectomy",
    "5": "multidisciplinary discussion regarding radical cystectomy",
}


def draft(d: Dictation, patient, study, prior) -> Draft:
    out = Draft(family="virads", modality="MR BLADDER", exam="MR PELVIS BLADDER PROTOCOL")
    out.indication = d.pick(("bladder tumor on cystoscopy, local staging", "hematuria, bladder mass", "urothelial carcinoma, pre-TURBT staging"))
    out.technique = "multiparametric MRI of the bladder: T2-weighted, DWI and dynamic contrast-enhanced sequences"
    cat = d.pick(("1", "2", "2", "3", "4", "4", "5"))
    loc = d.pick(("left lateral wall", "right lateral wall", "posterior wall", "trigone", "dome"))
    size = str(d.size(0.5, 0.9) if cat == "1" else d.size(1.1, 4.5))
    text = d.say(_TUMOR, size=size, obs=d.present("tumor"), loc=d.anat(loc), wall=_WALL[cat])
    out.findings.append(("Bladder", text))
    out.claims.append(Claim("a bladder tumor", "bladder tumor", True) if "bladder" in text else Claim("a tumor", "tumor", True))
    if cat == "5":
        out.findings.append(("Bladder", f"{d.present('invasion')} of the perivesical fat adjacent to the {loc}"))
    else:
        out.findings.append(("Bladder", f"no {d.absent('invasion')} of the perivesical fat"))
    out.claims.append(Claim("invasion of the perivesical fat", "invasion of the perivesical fat", cat == "5"))
    out.findings.append(("Other", d.pick(("no pelvic lymphadenopathy", "the upper urinary tracts are not dilated"))))
    out.qa.append(ask("size", f"{size} cm", thing="bladder tumor"))
    out.qa.append(ask("location", loc, thing="bladder tumor"))
    out.impression.append(f"{size} cm bladder tumor along the {loc}")
    state_category(d, out, "VI-RADS", cat, _MEANING[cat])
    recommend(d, out, _ACTION[cat])
    out.neutrals = ("a kidney stone", "a urethral stricture", "a history of smoking")
    return out
