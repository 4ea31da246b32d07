"""Distant metastatic sites of a lung primary (M1) and the benign look-alikes that keep M0 honest.

Every site is named by one noun phrase ("metastatic disease in the liver") that the findings use
verbatim, so claims, change cues and entities all quote the same words.
"""

from __future__ import annotations

from dataclasses import dataclass

from radbatch.sample.dictation import Dictation, Options, Variants
from radbatch.sample.draft import Claim

SITES = ("liver", "adrenal", "bone", "lung", "pleura")
GROUP = {"liver": "Abdomen and pelvis", "adrenal": "Abdomen and pelvis", "bone": "Bones", "lung": "Chest", "pleura": "Chest"}
ENTITY = {
    "liver": "metastatic disease in the liver",
    "adrenal": "adrenal metastatic disease",
    "bone": "osseous metastatic disease",
    "lung": "pulmonary metastatic disease",
    "pleura": "pleural metastatic disease",
}


@dataclass(frozen=True)
class Met:
    site: str
    size: float


_TEXT = {
    "liver": Variants(
        "multiple hypoattenuating lesions in the {anat}, the largest measuring {size} cm, consistent with {obs}",
        "several {anat} lesions up to {size} cm, compatible with {obs}",
        train=("hypodense {anat} lesions, the largest {size} cm, in keeping with {obs}",),
        test=("hypoenhancing lesions throughout the {anat} (up to {size} cm) representing {obs}",),
    ),
    "adrenal": Variants(
        "{size} cm {anat} nodule, consistent with {obs}",
        "{anat} mass measuring {size} cm, compatible with {obs}",
        test=("enlarging {size} cm {anat} nodule representing {obs}",),
    ),
    "bone": Variants(
        "lytic lesion in the {anat} measuring {size} cm, consistent with {obs}",
        "{size} cm destructive lesion of the {anat}, compatible with {obs}",
        test=("{size} cm permeative lesion of the {anat} representing {obs}",),
    ),
    "lung": Variants(
        "multiple nodules in the {anat} up to {size} cm, consistent with {obs}",
        "innumerable nodules in the {anat}, the largest {size} cm, compatible with {obs}",
        test=("scattered {anat} nodules up to {size} cm representing {obs}",),
    ),
    "pleura": Variants(
        "{anat} nodularity up to {size} cm with effusion, consistent with {obs}",
        "nodular {anat} thickening measuring up to {size} cm, compatible with {obs}",
        test=("{anat} nodules to {size} cm representing {obs}",),
    ),
}
_OBS = {  # the obs phrase each site's text uses, so ENTITY words occur in the sentence
    "liver": "metastatic disease",
    "adrenal": "adrenal metastatic disease",
    "bone": "osseous metastatic disease",
    "lung": "pulmonary metastatic disease",
    "pleura": "pleural metastatic disease",
}


_BONES = ("T10 vertebral body", "L2 vertebral body", "right iliac bone", "left sixth rib", "sternum")


def _anat(d: Dictation, site: str, side: str) -> str:
    other = "left" if side == "right" else "right"
    if site == "bone":
        return d.pick(_BONES)
    return {"liver": "liver", "adrenal": f"{side} adrenal gland", "lung": f"{other} lung", "pleura": f"{side} pleural"}[site]


def met_text(d: Dictation, met: Met, side: str) -> str:
    anat = d.anat(_anat(d, met.site, side))
    return d.say(_TEXT[met.site], anat=anat, size=str(met.size), obs=d.present(_OBS[met.site]))


def change_np(d: Dictation, met: Met) -> str:
    return d.present(ENTITY[met.site])


def claim(met: Met) -> Claim:
    return Claim(ENTITY[met.site], ENTITY[met.site], True)


def summary(d: Dictation, mets: list[Met]) -> str:
    return " and ".join(d.present(ENTITY[m.site]) for m in mets)


_INCIDENTAL = Options(
    ("Abdomen and pelvis", "{size} cm {obs} in the {anat}", "simple cyst", "liver"),
    ("Abdomen and pelvis", "{size} cm {obs} in the {anat}", "simple cyst", "right kidney"),
    ("Bones", "{size} cm {obs} in the {anat}", "bone island", "L3 vertebral body"),
    ("Chest", "{obs} in the {anat}", "centrilobular emphysema", "upper lobes"),
    ("Abdomen and pelvis", "{obs} of the {anat}", "diverticulosis", "sigmoid colon"),
    train=(("Abdomen and pelvis", "{size} cm {obs} in the {anat}", "hemangioma", "liver"),),
    test=(("Abdomen and pelvis", "{size} cm {obs} of the {anat}", "lipid-rich adenoma", "left adrenal gland"),),
)


def incidental(d: Dictation, mets: list[Met]) -> list[tuple[str, str]]:
    """Benign findings a reader must not take for metastases (0-2 per report)."""
    out = []
    for _ in range(d.below(3)):
        group, template, obs, anat = d.choose(_INCIDENTAL)
        if "adrenal" in anat and any(m.site == "adrenal" for m in mets):
            continue
        size = str(d.size(0.4, 1.8))
        out.append((group, template.format(size=size, obs=d.present(obs), anat=d.anat(anat))))
    return out
