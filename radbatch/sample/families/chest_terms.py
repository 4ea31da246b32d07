"""Chest radiograph wording for the 14 CheXpert labels: positive, uncertain and negative statements.

Conventions the gold relies on (and tests/test_sample_labels.py checks independently):
- a positive statement names the finding with no negation or hedge in its clause;
- an uncertain one hedges it in the same clause (possible, cannot be excluded, versus, likely, ...);
- a negative one negates it ("no ...", "normal", "not enlarged");
- a clause never mentions a second label unless that label's status is set too.
"""

from __future__ import annotations

from dataclasses import dataclass

from radbatch.sample.dictation import Dictation, Variants

POS, NEG, UNC = "positive", "negative", "uncertain"

SEVERITY = {
    "pleural_effusion": ("small", "moderate", "large"),
    "pneumothorax": ("small", "moderate", "large"),
    "edema": ("mild", "moderate", "severe"),
    "consolidation": ("patchy", "confluent", "extensive"),
    "atelectasis": ("minimal", "mild", "moderate"),
    "lung_opacity": ("faint", "patchy", "dense"),
    "cardiomegaly": ("mild", "moderate", "marked"),
}
LOBES = {
    "right": ("right upper lobe", "right middle lobe", "right lower lobe"),
    "left": ("left upper lobe", "lingula", "left lower lobe"),
}
_ABBREV = {
    "right upper lobe": "RUL",
    "right middle lobe": "RML",
    "right lower lobe": "RLL",
    "left upper lobe": "LUL",
    "left lower lobe": "LLL",
}
_BASE = {"right": "right lung base", "left": "left lung base", "bilateral": "lung bases"}


@dataclass
class Fact:
    """One CheXpert label's state in one report, with what the text needs to say it."""

    label: str
    status: str
    side: str = ""  # right | left | bilateral
    loc: str = ""  # lobe, when the finding has one
    sev: int = 0  # index into SEVERITY[label]
    detail: str = ""  # device kind, rib, size in cm

    @property
    def severity(self) -> str:
        return SEVERITY[self.label][self.sev]


def lobe(d: Dictation, name: str) -> str:
    return _ABBREV.get(name, name) if d.terse else name


def base(side: str) -> str:
    return _BASE[side]


# -- positive and uncertain statements, one function per label --------------------------------------

_EFFUSION_POS = Variants(
    "{sev} {side} {obs}",
    "there is a {sev} {side} {obs}",
    "{sev} {side} {obs} is present",
    train=("{sev} {side} {obs} noted",),
    test=("{side} {obs}, {sev} in size",),
)
_EFFUSIONS_POS = Variants(
    "{sev} bilateral {obs}", "there are {sev} bilateral {obs}", train=("bilateral {sev} {obs}",), test=("{obs}, bilateral and {sev}",)
)
_EFFUSION_UNC = Variants(
    "possible {sev} {side} {obs}",
    "blunting of the {side} costophrenic angle, which may represent a {sev} {obs}",
    train=("probable {sev} {side} {obs}",),
    test=("{sev} {side} {obs} cannot be excluded",),
)


def pleural_effusion(d: Dictation, f: Fact) -> str:
    if f.side == "bilateral" and f.status == POS:
        return d.say(_EFFUSIONS_POS, sev=f.severity, obs=d.present(d.pick(("pleural effusions", "effusions"))))
    side = "right" if f.side == "bilateral" else f.side
    if f.status == POS:
        return d.say(_EFFUSION_POS, sev=f.severity, side=side, obs=d.present(d.pick(("pleural effusion", "effusion"))))
    return d.say(_EFFUSION_UNC, sev="small", side=side, obs=d.uncertain("pleural effusion"))


_PTX_POS = Variants(
    "{sev} {side} apical {obs}",
    "there is a {sev} {side} apical {obs}",
    "{sev} {side} {obs}",
    train=("{sev} {side} {obs} is present",),
    test=("{sev} {side}-sided {obs}",),
)
_PTX_UNC = Variants(
    "possible tiny {side} apical {obs}",
    "skin fold versus tiny {side} apical {obs}",
    train=("questionable {side} apical {obs}",),
    test=("a tiny {side} apical {obs} cannot be excluded",),
)


def pneumothorax(d: Dictation, f: Fact) -> str:
    word = "PTX" if d.terse and d.random() < 0.5 else "pneumothorax"
    if f.status == POS:
        return d.say(_PTX_POS, sev=f.severity, side=f.side, obs=d.present(word))
    return d.say(_PTX_UNC, side=f.side, obs=d.uncertain(word))


_CONSOL_POS = Variants(
    "{sev} {obs} in the {loc}",
    "{sev} {loc} {obs}",
    "there is {sev} {obs} involving the {loc}",
    train=("{sev} {obs} within the {loc}",),
    test=("{obs} of the {loc}, {sev} in character",),
)
_CONSOL_UNC = Variants(
    "possible early {obs} in the {loc}",
    "questionable {obs} in the {loc}",
    train=("early {obs} in the {loc} is not excluded",),
    test=("subtle {obs} in the {loc} may be present",),
)


def consolidation(d: Dictation, f: Fact) -> str:
    loc = d.anat(lobe(d, f.loc))
    if f.status == POS:
        obs = d.present(d.pick(("consolidation", "airspace consolidation")))
        return d.say(_CONSOL_POS, sev=f.severity, loc=loc, obs=obs)
    return d.say(_CONSOL_UNC, loc=loc, obs=d.uncertain("consolidation"))


_PNA_POS = Variants(
    "findings consistent with {loc} {obs}",
    "{loc} {obs}",
    train=("{obs} in the {loc}",),
    test=("appearance compatible with {loc} {obs}",),
)
_PNA_UNC = Variants(
    "{obs} cannot be excluded in the {loc}",
    "possible {loc} {obs}",
    train=("early {loc} {obs} is not excluded",),
    test=("{loc} {obs} is suspected",),
)


def pneumonia(d: Dictation, f: Fact) -> str:
    loc = d.anat(lobe(d, f.loc))
    if f.status == POS:
        return d.say(_PNA_POS, loc=loc, obs=d.present("pneumonia"))
    return d.say(_PNA_UNC, loc=loc, obs=d.uncertain("pneumonia"))


_EDEMA_POS = Variants(
    "{sev} {obs}",
    "{sev} interstitial {obs}",
    "there is {sev} {obs}",
    train=("findings of {sev} {obs}",),
    test=("{obs}, {sev}",),
)
_EDEMA_UNC = Variants(
    "possible {sev} {obs}",
    "question of {sev} interstitial {obs}",
    train=("findings may reflect {sev} {obs}",),
    test=("{sev} {obs} is not excluded",),
)


def edema(d: Dictation, f: Fact) -> str:
    if f.status == POS:
        return d.say(_EDEMA_POS, sev=f.severity, obs=d.present(d.pick(("pulmonary edema", "edema"))))
    return d.say(_EDEMA_UNC, sev="mild", obs=d.uncertain("pulmonary edema"))


_ATEL_POS = Variants(
    "{sev} {obs} at the {loc}",
    "{sev} {obs} in the {loc}",
    train=("{loc} with {sev} {obs}",),
    test=("{sev} {obs} is seen at the {loc}",),
)
_ATEL_UNC = Variants(
    "possible {obs} at the {loc}",
    "findings at the {loc} may reflect {obs}",
    train=("probable {obs} at the {loc}",),
    test=("{obs} at the {loc} is suspected",),
)


def atelectasis(d: Dictation, f: Fact) -> str:
    loc = d.anat(base(f.side))
    if f.status == POS:
        obs = d.present(d.pick(("atelectasis", "subsegmental atelectasis", "linear atelectasis")))
        return d.say(_ATEL_POS, sev=f.severity, loc=loc, obs=obs)
    return d.say(_ATEL_UNC, loc=loc, obs=d.uncertain("atelectasis"))


_OPACITY_POS = Variants(
    "{sev} {obs} in the {loc}",
    "{sev} {loc} {obs}",
    "there is {sev} {obs} in the {loc}",
    train=("{sev} {obs} projecting over the {loc}",),
    test=("{obs}, {sev}, in the {loc}",),
)
_OPACITY_UNC = Variants(
    "questionable {obs} in the {loc}",
    "possible subtle {obs} in the {loc}",
    train=("subtle {obs} in the {loc} cannot be excluded",),
    test=("{obs} in the {loc} may be present",),
)


def lung_opacity(d: Dictation, f: Fact) -> str:
    loc = d.anat(lobe(d, f.loc))
    if f.status == POS:
        obs = d.present(d.pick(("opacity", "airspace opacity", "airspace disease")))
        return d.say(_OPACITY_POS, sev=f.severity, loc=loc, obs=obs)
    return d.say(_OPACITY_UNC, loc=loc, obs=d.uncertain("opacity"))


_CARDIO_POS = Variants(
    "{sev} {obs}",
    "there is {sev} {obs}",
    train=("{sev} {obs} is present",),
    test=("{obs}, {sev}",),
)
_HEART_POS = Variants(
    "the {anat} is {adv} {obs}",
    "{adv} {obs} {anat}",
    train=("{anat} {adv} {obs}",),
    test=("the {anat} appears {adv} {obs}",),
)
_CARDIO_UNC = Variants(
    "possible {sev} {obs}",
    "{sev} {obs} cannot be excluded given AP technique",
    train=("probable {sev} {obs}",),
    test=("questionable {sev} {obs}",),
)


def cardiomegaly(d: Dictation, f: Fact) -> str:
    if f.status == UNC:
        return d.say(_CARDIO_UNC, sev=f.severity, obs=d.uncertain("cardiomegaly"))
    if d.random() < 0.5:
        return d.say(_CARDIO_POS, sev=f.severity, obs=d.present("cardiomegaly"))
    anat = d.anat(d.pick(("heart", "cardiac silhouette")))
    return d.say(_HEART_POS, anat=anat, adv=f.severity + "ly", obs=d.present("enlarged"))


_MEDIASTINUM_POS = Variants(
    "the {anat} is {obs}",
    "{obs} {anat}",
    train=("{anat} appears {obs}",),
    test=("the {anat} is {obs} compared with expected",),
)
_MEDIASTINUM_UNC = Variants(
    "the {anat} may be {obs}",
    "possible {obs} {anat}",
    train=("questionably {obs} {anat}",),
    test=("the {anat} is possibly {obs}",),
)


def enlarged_cardiomediastinum(d: Dictation, f: Fact) -> str:
    if d.random() < 0.5:
        anat, obs = "mediastinum", "widened"
    else:
        anat, obs = "cardiomediastinal silhouette", "enlarged"
    anat = d.anat(anat)
    if f.status == POS:
        return d.say(_MEDIASTINUM_POS, anat=anat, obs=d.present(obs))
    return d.say(_MEDIASTINUM_UNC, anat=anat, obs=d.uncertain(obs))


_FRACTURE_POS = Variants(
    "{age} {obs} of the {anat}",
    "{age} {anat} {obs}",
    "there is {age} {obs} of the {anat}",
    train=("{age} {obs} involving the {anat}",),
    test=("{age} {obs} is seen in the {anat}",),
)
_FRACTURE_UNC = Variants(
    "possible nondisplaced {obs} of the {anat}",
    "subtle lucency through the {anat}, which may represent a nondisplaced {obs}",
    train=("questionable {obs} of the {anat}",),
    test=("nondisplaced {obs} of the {anat} cannot be excluded",),
)


def fracture(d: Dictation, f: Fact) -> str:
    anat = d.anat(f"{f.side} {f.detail}")
    if f.status == POS:
        age = d.pick(("an acute", "a healing", "an old healed", "a nondisplaced"))
        return d.say(_FRACTURE_POS, age=age, anat=anat, obs=d.present("fracture"))
    return d.say(_FRACTURE_UNC, anat=anat, obs=d.uncertain("fracture"))


_LESION_POS = Variants(
    "{size} cm {obs} in the {loc}",
    "there is a {size} cm {obs} in the {loc}",
    "{loc} {obs} measuring {size} cm",
    train=("{size} cm {obs} projects over the {loc}",),
    test=("{obs} in the {loc}, {size} cm",),
)
_LESION_UNC = Variants(
    "possible {size} cm {obs} in the {loc}",
    "nipple shadow versus {size} cm {obs} in the {loc}",
    train=("questionable {size} cm {obs} in the {loc}",),
    test=("a {size} cm {obs} in the {loc} cannot be excluded",),
)


def lung_lesion(d: Dictation, f: Fact) -> str:
    loc = d.anat(lobe(d, f.loc))
    if f.status == POS:
        obs = d.present("mass" if float(f.detail) >= 3 else d.pick(("nodule", "pulmonary nodule")))
        return d.say(_LESION_POS, size=f.detail, loc=loc, obs=obs)
    return d.say(_LESION_UNC, size=f.detail, loc=loc, obs=d.uncertain("nodule"))


_PLEURA_POS = Variants(
    "{side} apical {obs}",
    "there is {side} {obs}",
    train=("{side} {obs} noted",),
    test=("{obs} along the {side} hemithorax",),
)
_PLEURA_UNC = Variants(
    "possible {side} {obs}",
    "questionable {side} apical {obs}",
    train=("probable {side} {obs}",),
    test=("{side} {obs} may be present",),
)


def pleural_other(d: Dictation, f: Fact) -> str:
    if f.status == POS:
        return d.say(_PLEURA_POS, side=f.side, obs=d.present(d.pick(("pleural thickening", "pleural scarring"))))
    return d.say(_PLEURA_UNC, side=f.side, obs=d.uncertain("pleural thickening"))


_TUBE = Variants(
    "{dev} terminates {cm} cm above the carina",
    "{dev} tip is {cm} cm above the carina",
    train=("{dev} in satisfactory position, {cm} cm above the carina",),
    test=("{dev} with tip {cm} cm above the carina",),
)
_OTHER_DEVICE = {
    "enteric tube": "{dev} courses below the diaphragm with its tip in the stomach",
    "central venous catheter": "right internal jugular {dev} with tip in the superior vena cava",
    "PICC": "left upper extremity {dev} terminates at the cavoatrial junction",
    "pacemaker": "left chest wall {dev} with leads in the right atrium and right ventricle",
    "chest tube": "{side} {dev} in place",
}


def support_device(d: Dictation, f: Fact) -> tuple[str, str | None]:
    """A device statement, and the tip position when the text gives one (a QA answer)."""
    if f.detail == "endotracheal tube":
        dev = d.present("ETT" if d.terse else "endotracheal tube")
        cm = str(d.randint(2, 7))
        return d.say(_TUBE, dev=dev, cm=cm), f"{cm} cm above the carina"
    dev = d.present(f.detail)
    return _OTHER_DEVICE[f.detail].format(dev=dev, side=f.side or "right"), None


STATEMENTS = {
    "atelectasis": atelectasis,
    "cardiomegaly": cardiomegaly,
    "consolidation": consolidation,
    "edema": edema,
    "enlarged_cardiomediastinum": enlarged_cardiomediastinum,
    "fracture": fracture,
    "lung_lesion": lung_lesion,
    "lung_opacity": lung_opacity,
    "pleural_effusion": pleural_effusion,
    "pleural_other": pleural_other,
    "pneumonia": pneumonia,
    "pneumothorax": pneumothorax,
}
