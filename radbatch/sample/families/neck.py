"""Post-treatment head-and-neck cancer surveillance CT with one NI-RADS category (primary site or neck).

NI-RADS scores the primary site (1, 2a, 2b, 3, 4) and the neck (1, 2, 3, 4) separately; each report
here states one category and describes the other site in words only, so the gold is unambiguous.
"""

from __future__ import annotations

from radbatch.sample.dictation import Dictation, Variants
from radbatch.sample.draft import Claim, Draft
from radbatch.sample.families.rads import recommend, state_category
from radbatch.sample.qa import ask

_PRIMARY_MEANING = {
    "1": "no evidence of recurrence",
    "2a": "low suspicion, superficial abnormality",
    "2b": "low suspicion, deep abnormality",
    "3": "high suspicion of recurrence",
    "4": "definite recurrence",
}
_NECK_MEANING = {"1": "no evidence of recurrence", "2": "low suspicion", "3": "high suspicion of recurrence", "4": "definite recurrence"}
_ACTION = {
    "1": "routine surveillance imaging",
    "2a": "direct visual inspection",
    "2": "short-interval follow-up imaging in 3 months",
    "2b": "short-interval follow-up imaging in 3 months",
    "3": "tissue sampling",
    "4": "clinical management of recurrence",
}
_SITES = ("right base of tongue", "left base of tongue", "right tonsillar fossa", "left tonsillar fossa", "supraglottic larynx")
_MASS = Variants(
    "{size} cm discrete enhancing {obs} at the {site}{extra}",
    "there is a {size} cm enhancing {obs} at the {site}{extra}",
    train=("{site}: enhancing {obs}, {size} cm{extra}",),
    test=("nodular enhancing {obs} of the {site} measuring {size} cm{extra}",),
)


def draft(d: Dictation, patient, study, prior) -> Draft:
    out = Draft(family="nirads", modality="CT NECK", exam="CT NECK SOFT TISSUE WITH CONTRAST")
    site, level = d.pick(_SITES), f"{d.pick(('right', 'left'))} level {d.pick(('II', 'III', 'IV'))}"
    primary = site.removeprefix("right ").removeprefix("left ")
    out.indication = f"{primary} squamous cell carcinoma status post chemoradiation, surveillance"
    out.technique = "contrast-enhanced CT of the neck from the skull base to the thoracic inlet"
    if d.random() < 0.7:
        cat = d.pick(tuple(_PRIMARY_MEANING))
        _primary(d, out, site, cat)
        out.findings.append(("Neck", f"no new or enlarging cervical {d.absent('lymph nodes')}"))
        meaning = _PRIMARY_MEANING[cat] + " at the primary site"
    else:
        cat = d.pick(tuple(_NECK_MEANING))
        out.findings.append(("Primary site", f"expected post-treatment changes at the {d.anat(site)} without a discrete {d.absent('mass')}"))
        _neck(d, out, level, cat)
        meaning = _NECK_MEANING[cat] + " in the neck"
    state_category(d, out, "NI-RADS", cat, meaning)
    recommend(d, out, _ACTION[cat])
    out.neutrals = ("a brain metastasis", "a thyroid goiter", "xerostomia")
    return out


def _primary(d: Dictation, out: Draft, site: str, cat: str) -> None:
    anat = d.anat(site)
    if cat == "1":
        out.findings.append(("Primary site", f"expected post-treatment changes at the {anat} without a discrete {d.absent('mass')} or abnormal enhancement"))
        out.claims.append(Claim("a discrete mass", "discrete mass", False))
    elif cat == "2a":
        out.findings.append(("Primary site", f"superficial non-mass-like mucosal {d.present('enhancement')} at the {anat}"))
        out.claims.append(Claim("mucosal enhancement", "mucosal enhancement", True))
    elif cat == "2b":
        out.findings.append(("Primary site", f"deep ill-defined {d.present('enhancement')} at the {anat} without a discrete {d.absent('mass')}"))
        out.claims.append(Claim("a discrete mass", "discrete mass", False))
    else:
        size = str(d.size(1.0, 3.5))
        extra = ", biopsy-proven recurrence" if cat == "4" else ", new since the prior study"
        out.findings.append(("Primary site", d.say(_MASS, size=size, obs=d.present("mass"), site=anat, extra=extra)))
        out.claims.append(Claim("an enhancing mass", "enhancing mass", True))
        out.qa.append(ask("size", f"{size} cm", thing="mass"))
        out.impression.append(f"{size} cm enhancing mass at the {site}")


def _neck(d: Dictation, out: Draft, level: str, cat: str) -> None:
    if cat == "1":
        out.findings.append(("Neck", f"no residual or new abnormal {d.absent('lymph nodes')}"))
        out.claims.append(Claim("an abnormal lymph node", "abnormal lymph node", False))
    elif cat == "2":
        out.findings.append(("Neck", f"ill-defined residual soft tissue in {d.anat(level)} without a discrete {d.absent('nodule')}"))
        out.claims.append(Claim("a discrete nodule", "discrete nodule", False))
    else:
        size = str(d.size(1.1, 3.0))
        extra = ", biopsy-proven nodal recurrence" if cat == "4" else ""
        out.findings.append(("Neck", f"new enlarging {d.anat(level)} {d.present('lymph node')} measuring {size} cm with central necrosis{extra}"))
        out.claims.append(Claim("a lymph node with central necrosis", "lymph node with central necrosis", True))
        out.qa.append(ask("location", level, thing="enlarging lymph node"))
        out.qa.append(ask("size", f"{size} cm", thing="enlarging lymph node"))
