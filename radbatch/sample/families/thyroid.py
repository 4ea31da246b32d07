"""Thyroid ultrasound with an ACR TI-RADS level computed from the nodule's features (points)."""

from __future__ import annotations

from radbatch.sample.dictation import Dictation, Options, Variants
from radbatch.sample.draft import Claim, Draft, article
from radbatch.sample.families.rads import recommend, state_category
from radbatch.sample.qa import ask

# ACR TI-RADS feature -> points
_COMPOSITION = (("mixed cystic and solid", 1), ("solid", 2), ("almost completely solid", 2))
_ECHO = (("hyperechoic", 1), ("isoechoic", 1), ("hypoechoic", 2), ("very hypoechoic", 3))
_SHAPE = (("wider-than-tall", 0), ("wider-than-tall", 0), ("taller-than-wide", 3))
_MARGIN = (("smooth margins", 0), ("ill-defined margins", 0), ("lobulated margins", 2), ("irregular margins", 2), ("extrathyroidal extension", 3))
_FOCI = (("no echogenic foci", 0), ("large comet-tail artifacts", 0), ("macrocalcifications", 1), ("peripheral rim calcifications", 2), ("punctate echogenic foci", 3))
_MEANING = {"TR1": "benign", "TR2": "not suspicious", "TR3": "mildly suspicious", "TR4": "moderately suspicious", "TR5": "highly suspicious"}
# level -> (FNA at or above cm, follow-up at or above cm)
_MANAGEMENT = {"TR3": (2.5, 1.5), "TR4": (1.5, 1.0), "TR5": (1.0, 0.5)}

_NODULE = Variants(
    "{side} lobe, {pole} pole: {size} cm {features} {obs}, {shape}, with {margin} and {foci}",
    "in the {pole} {side} lobe there is a {size} cm {features} {obs}, {shape}, with {margin} and {foci}",
    train=("{size} cm {features} {obs} in the {pole} {side} lobe; {shape}; {margin}; {foci}",),
    test=("{features} {obs} of the {side} lobe ({pole} pole) measuring {size} cm, {shape}, {margin}, {foci}",),
)
_GLAND = Options(
    "the thyroid gland is normal in size with homogeneous echotexture",
    "the thyroid gland is normal in size",
    train=("thyroid size within normal limits",),
    test=("normal-sized thyroid with mildly heterogeneous parenchyma",),
)


def draft(d: Dictation, patient, study, prior) -> Draft:
    out = Draft(family="tirads", modality="US THYROID", exam="US THYROID")
    out.indication = d.pick(("thyroid nodule seen on CT", "palpable neck mass", "follow-up of thyroid nodule", "goiter"))
    out.technique = "grayscale and color Doppler ultrasound of the thyroid"
    side, pole, size = d.pick(("right", "left")), d.pick(("upper", "mid", "lower")), d.size(0.5, 3.8)
    out.findings.append(("Thyroid", d.choose(_GLAND)))
    level, text, echo = _nodule(d, side, pole, size)
    out.findings.append(("Nodules", text))
    out.claims.append(Claim(article(f"{echo} nodule"), f"{echo} nodule", True))
    out.findings.append(("Lymph nodes", f"no abnormal cervical {d.absent('lymph nodes')}"))
    out.claims.append(Claim("an abnormal cervical lymph node", "abnormal cervical lymph node", False))
    out.qa.append(ask("size", f"{size} cm", thing="nodule"))
    out.qa.append(ask("side", side, thing="nodule"))
    out.impression.append(f"{size} cm {side} thyroid nodule")
    state_category(d, out, "TI-RADS", level, _MEANING[level])
    recommend(d, out, _action(level, size))
    out.neutrals = ("a parathyroid adenoma", "vocal cord paralysis", "hyperthyroidism")
    return out


def _nodule(d: Dictation, side: str, pole: str, size: float) -> tuple[str, str, str]:
    """Features and their TI-RADS level; TR1 is a cystic or spongiform nodule (0 points)."""
    obs = d.present("nodule")
    d.anat(f"{side} lobe")
    if d.random() < 0.12:
        features = d.pick(("spongiform", "anechoic cystic"))
        echo = "anechoic" if features == "anechoic cystic" else "spongiform"
        text = f"{side} lobe, {pole} pole: {size} cm {features} {obs} without solid component"
        return "TR1", text, echo
    # composition and echogenicity give at least 2 points, so no draw lands on the unlevelled 1 point
    picks = [d.pick(table) for table in (_COMPOSITION, _ECHO, _SHAPE, _MARGIN, _FOCI)]
    points = sum(p for _, p in picks)
    (comp, _), (echo, _), (shape, _), (margin, _), (foci, _) = picks
    level = "TR2" if points == 2 else "TR3" if points == 3 else "TR4" if points <= 6 else "TR5"
    text = d.say(_NODULE, side=side, pole=pole, size=str(size), features=f"{comp}, {echo}", obs=obs, shape=shape, margin=margin, foci=foci)
    if d.random() < 0.3:
        text += f" ({points} points)"
    return level, text, echo


def _action(level: str, size: float) -> str:
    fna, follow = _MANAGEMENT.get(level, (99.0, 99.0))
    if size >= fna:
        return "ultrasound-guided fine-needle aspiration"
    if size >= follow:
        return "follow-up ultrasound in 1 year"
    return "no further ultrasound follow-up"
