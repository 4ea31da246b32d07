"""Adnexal ultrasound or MRI with an O-RADS category (risk stratification of an ovarian lesion)."""

from __future__ import annotations

from radbatch.sample.dictation import Dictation, Variants
from radbatch.sample.draft import Claim, Draft, article
from radbatch.sample.families.rads import recommend, state_category
from radbatch.sample.qa import ask

_MEANING = {
    "0": "incomplete evaluation",
    "1": "normal ovary",
    "2": "almost certainly benign",
    "3": "low risk of malignancy",
    "4": "intermediate risk of malignancy",
    "5": "high risk of malignancy",
}
# category -> (lesion description, obs noun, has solid tissue)
_LESIONS = {
    "2": (("{size} cm unilocular {obs} with smooth thin walls", "simple cyst", False),
          ("{size} cm {obs} with reticular internal pattern and no internal vascularity", "hemorrhagic cyst", False),
          ("{size} cm {obs} with homogeneous low-level echoes", "endometrioma", False)),
    "3": (("{size} cm multilocular {obs} with smooth walls and septations", "cyst", False),
          ("{size} cm unilocular {obs} with an irregular inner wall less than 3 mm", "cyst", False)),
    "4": (("{size} cm multilocular {obs} with a solid component", "cystic lesion", True),
          ("{size} cm smooth {obs}", "solid lesion", True)),
    "5": (("{size} cm irregular {obs} with internal flow", "solid mass", True),
          ("{size} cm unilocular {obs} with four or more papillary projections", "cystic lesion", True)),
}  # fmt: skip
_ACTION = {
    "0": "repeat ultrasound or MRI",
    "1": "no further imaging",
    "2": "no further imaging or follow-up ultrasound as clinically indicated",
    "3": "follow-up ultrasound or MRI by an ultrasound specialist",
    "4": "pelvic MRI and gynecology referral",
    "5": "gynecologic oncology referral",
}
_OVARY = Variants(
    "{side} ovary: {lesion}",
    "in the {side} ovary there is a {lesion}",
    train=("{side} adnexa demonstrates a {lesion}",),
    test=("{lesion}, arising from the {side} ovary",),
)


def draft(d: Dictation, patient, study, prior) -> Draft:
    modality = d.pick(("US PELVIS", "US PELVIS", "MR PELVIS"))
    out = Draft(family="orads", modality=modality, exam=modality + (" TRANSVAGINAL" if modality == "US PELVIS" else ""))
    out.indication = d.pick(("pelvic pain", "adnexal mass on prior imaging", "abnormal uterine bleeding", "palpable pelvic mass"))
    out.technique = "transabdominal and transvaginal ultrasound" if modality == "US PELVIS" else "MRI of the pelvis without and with contrast"
    out.findings.append(("Uterus", f"the uterus is {d.present('normal')} in size, endometrium {d.randint(3, 12)} mm"))
    weights = (6, 14, 30, 18, 18, 14) if modality == "US PELVIS" else (0, 14, 30, 18, 22, 16)
    cat = d.rng.choices(("0", "1", "2", "3", "4", "5"), weights)[0]
    side = d.pick(("right", "left"))
    if cat == "0":
        out.findings.append(("Adnexa", f"the {d.anat(side + ' ovary')} is not visualized due to overlying bowel gas"))
    elif cat == "1":
        out.findings.append(("Adnexa", f"the {d.anat(side + ' ovary')} is {d.present('normal')} with a {d.randint(8, 25)} mm dominant follicle"))
    else:
        _lesion(d, out, cat, side)
    fluid = cat == "5" and d.random() < 0.5
    out.findings.append(("Other", f"{'moderate ' if fluid else 'no '}{(d.present if fluid else d.absent)('ascites')}"))
    out.claims.append(Claim("ascites", "ascites", fluid))
    system_name = "US" if modality == "US PELVIS" else "MRI"
    state_category(d, out, "O-RADS", cat, _MEANING[cat], modality_name=system_name)
    recommend(d, out, _ACTION[cat])
    out.neutrals = ("an intrauterine pregnancy", "a uterine fibroid", "a BRCA mutation")
    return out


def _lesion(d: Dictation, out: Draft, cat: str, side: str) -> None:
    template, obs, solid = d.pick(_LESIONS[cat])
    size = str(d.size(2.0, 9.5))
    lesion = template.format(size=size, obs=d.present(obs))
    out.findings.append(("Adnexa", d.say(_OVARY, side=d.anat(side), lesion=lesion)))
    out.claims.append(Claim(article(obs), obs, True))
    if not solid:
        out.findings.append(("Adnexa", f"no {d.absent('solid component')} or internal vascularity"))
        out.claims.append(Claim("a solid component", "solid component", False))
    out.qa.append(ask("size", f"{size} cm", thing=obs))
    out.qa.append(ask("side", side, thing=obs))
    out.impression.append(f"{size} cm {side} adnexal {obs}")
