"""Breast imaging (mammography, ultrasound, MRI) with a BI-RADS assessment."""

from __future__ import annotations

from radbatch.sample.dictation import Dictation, Options, Variants
from radbatch.sample.draft import Claim, Draft, article
from radbatch.sample.families.rads import recommend, state_category
from radbatch.sample.qa import ask

_CATEGORIES = ("0", "1", "2", "3", "4", "4A", "4B", "4C", "5", "6")
_WEIGHTS = (8, 18, 16, 10, 6, 8, 8, 7, 8, 7)
_MEANING = {
    "0": "incomplete, need additional imaging evaluation",
    "1": "negative",
    "2": "benign",
    "3": "probably benign",
    "4": "suspicious",
    "4A": "low suspicion for malignancy",
    "4B": "moderate suspicion for malignancy",
    "4C": "high suspicion for malignancy",
    "5": "highly suggestive of malignancy",
    "6": "known biopsy-proven malignancy",
}
_MARGINS = {"4": "indistinct", "4A": "microlobulated", "4B": "indistinct", "4C": "angular", "5": "spiculated"}
_SHAPE = {"4": "irregular", "4A": "oval", "4B": "irregular", "4C": "irregular", "5": "irregular"}
_DENSITY = Options(
    "the breasts are almost entirely fatty",
    "there are scattered areas of fibroglandular density",
    "the breasts are heterogeneously dense, which may obscure small masses",
    train=("the breasts are extremely dense",),
    test=("breast composition: heterogeneously dense (ACR c)",),
)
_NEGATIVE = Variants(
    "no suspicious {obs}, calcifications, or architectural distortion",
    "there is no suspicious {obs}, calcification, or architectural distortion in either breast",
    train=("no dominant or suspicious {obs} is seen",),
    test=("neither breast shows a suspicious {obs} or suspicious calcifications",),
)
_MASS = Variants(
    "{shape} {obs} with {margin} margins in the {side} breast at {clock} o'clock, measuring {size} cm",
    "in the {side} breast at {clock} o'clock there is a {size} cm {shape} {obs} with {margin} margins",
    train=("{side} breast {clock} o'clock: {shape} {obs}, {margin} margins, {size} cm",),
    test=("a {size} cm {shape} {obs} with {margin} margins is seen at {clock} o'clock in the {side} breast",),
)
_BENIGN = Options(
    ("{size} cm {obs} in the {side} breast at {clock} o'clock", "simple cyst"),
    ("stable {obs} in the {side} breast at {clock} o'clock, {size} cm", "intramammary lymph node"),
    ("{size} cm {obs} in the {side} breast at {clock} o'clock", "oil cyst"),
    train=(("coarse {obs} in the {side} breast at {clock} o'clock spanning {size} cm", "popcorn calcification"),),
    test=(("{obs} measuring {size} cm in the {side} breast at {clock} o'clock", "fat-containing lymph node"),),
)


def draft(d: Dictation, patient, study, prior) -> Draft:
    cat = d.rng.choices(_CATEGORIES, _WEIGHTS)[0]
    modality = "MG BREAST" if cat == "0" else d.pick(("MG BREAST", "MG BREAST", "US BREAST", "MR BREAST"))
    out = Draft(family="birads", modality=modality)
    side, clock, size = d.pick(("right", "left")), str(d.randint(1, 12)), str(d.size(0.4, 3.5))
    out.indication = _indication(d, cat, side)
    out.technique = _technique(d, modality, side)
    if modality == "MG BREAST":
        out.findings.append(("Breasts", d.choose(_DENSITY)))
    group = f"{side.title()} breast"
    if cat in _SHAPE:
        obs = d.present("mass")
        d.anat(f"{side} breast")  # every _MASS phrasing says "<side> breast"
        out.findings.append((group, d.say(_MASS, shape=_SHAPE[cat], obs=obs, margin=_MARGINS[cat], side=side, clock=clock, size=size)))
        out.claims.append(Claim(article(f"{_SHAPE[cat]} mass"), f"{_SHAPE[cat]} mass", True))
        _mass_questions(d, out, size, clock, side)
        out.impression.append(f"{size} cm {_SHAPE[cat]} mass in the {side} breast at {clock} o'clock")
    elif cat in ("2", "3", "6"):
        _benign_or_known(d, out, cat, group, side, clock, size)
    elif cat == "0":
        out.findings.append((group, f"possible {d.uncertain('asymmetry')} in the {d.anat(side + ' breast')}, seen on the {d.pick(('CC', 'MLO'))} view only"))
        out.impression.append(f"possible asymmetry in the {side} breast")
    if cat in ("1", "2"):
        out.findings.append(("Breasts", d.say(_NEGATIVE, obs=d.absent("mass"))))
        out.claims.append(Claim("a suspicious mass", "suspicious mass", False))
    state_category(d, out, "BI-RADS", cat, _MEANING[cat])
    recommend(d, out, _action(d, cat, side))
    out.neutrals = ("axillary lymphadenopathy", "a breast implant rupture", "a family history of breast cancer")
    return out


def _benign_or_known(d: Dictation, out: Draft, cat: str, group: str, side: str, clock: str, size: str) -> None:
    if cat == "6":
        text = f"known biopsy-proven {d.present('carcinoma')} in the {side} breast at {clock} o'clock, measuring {size} cm, with a {d.present('biopsy clip')} in place"
        out.findings.append((group, text))
        out.claims.append(Claim("a biopsy clip", "biopsy clip", True))
        out.impression.append(f"known {side} breast carcinoma, {size} cm")
    elif cat == "3":
        shape = d.pick(("oval", "round"))
        out.findings.append((group, f"{shape} circumscribed {d.present('mass')} in the {side} breast at {clock} o'clock, measuring {size} cm, likely a fibroadenoma"))
        out.claims.append(Claim("a circumscribed mass", "circumscribed mass", True))
        out.impression.append(f"{size} cm circumscribed mass in the {side} breast, likely a fibroadenoma")
    else:
        template, obs = d.choose(_BENIGN)
        out.findings.append((group, template.format(size=size, obs=d.present(obs), side=side, clock=clock)))
        out.claims.append(Claim(article(obs), obs, True))
        out.impression.append(f"benign-appearing {obs} in the {side} breast")
    _mass_questions(d, out, size, clock, side)


def _mass_questions(d: Dictation, out: Draft, size: str, clock: str, side: str) -> None:
    out.qa.append(ask("size", f"{size} cm", thing="lesion"))
    out.qa.append(ask("location", f"{clock} o'clock", thing="lesion"))
    out.qa.append(ask("side", side, thing="lesion"))


def _indication(d: Dictation, cat: str, side: str) -> str:
    if cat == "6":
        return "newly diagnosed breast cancer, extent of disease"
    if cat in ("0", "1", "2") and d.random() < 0.7:
        return d.pick(("screening", "annual screening mammogram", "routine screening"))
    return d.pick((f"palpable lump in the {side} breast", f"{side} breast pain", "follow-up of a prior finding"))


def _technique(d: Dictation, modality: str, side: str) -> str:
    if modality == "MG BREAST":
        return d.pick(("bilateral CC and MLO views", "digital breast tomosynthesis, bilateral CC and MLO views"))
    if modality == "US BREAST":
        return f"targeted ultrasound of the {side} breast"
    return "dynamic contrast-enhanced MRI of both breasts"


def _action(d: Dictation, cat: str, side: str) -> str:
    if cat == "0":
        return "additional diagnostic mammographic views and ultrasound"
    if cat in ("1", "2"):
        return "routine screening mammography in 1 year"
    if cat == "3":
        return "short-interval follow-up ultrasound in 6 months"
    if cat == "6":
        return "surgical consultation as clinically appropriate"
    return d.pick(("ultrasound-guided core needle biopsy", f"tissue sampling of the {side} breast mass"))
