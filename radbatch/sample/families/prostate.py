"""Prostate MRI with a PI-RADS v2.1 category: DWI decides in the peripheral zone, T2 in the transition zone."""

from __future__ import annotations

from radbatch.sample.dictation import Dictation, Variants
from radbatch.sample.draft import Claim, Draft
from radbatch.sample.families.rads import recommend, state_category
from radbatch.sample.qa import ask

_MEANING = {
    "1": "very low, clinically significant cancer highly unlikely",
    "2": "low, clinically significant cancer unlikely",
    "3": "intermediate, clinically significant cancer equivocal",
    "4": "high, clinically significant cancer likely",
    "5": "very high, clinically significant cancer highly likely",
}
_DWI = {
    2: "linear hypointensity on ADC without a focal component",
    3: "focal mild to moderate hypointensity on ADC, isointense on high b-value DWI",
    4: "focal markedly hypointense on ADC and markedly hyperintense on high b-value DWI",
    5: "focal markedly hypointense on ADC and markedly hyperintense on high b-value DWI",
}
_T2 = {
    2: "mostly encapsulated hypointense nodule",
    3: "heterogeneous signal intensity with obscured margins",
    4: "lenticular, non-circumscribed, homogeneous moderately hypointense lesion",
    5: "lenticular, non-circumscribed, homogeneous moderately hypointense lesion",
}
_LESION = Variants(
    "{size} cm {obs} in the {loc}: {signal}",
    "there is a {size} cm {obs} in the {loc} with {signal}",
    train=("{loc} {obs} ({size} cm), {signal}",),
    test=("index {obs} of the {loc}, {size} cm, showing {signal}",),
)


def pirads_category(zone: str, score: int, dce_positive: bool, other: int) -> str:
    """v2.1: PZ DWI score, upgraded 3->4 by positive DCE; TZ T2 score, upgraded 2->3 by DWI >= 4, 3->4 by DWI 5."""
    if zone == "PZ":
        return "4" if score == 3 and dce_positive else str(score)
    if score == 2 and other >= 4:
        return "3"
    if score == 3 and other == 5:
        return "4"
    return str(score)


def draft(d: Dictation, patient, study, prior) -> Draft:
    out = Draft(family="pirads", modality="MR PROSTATE", exam="MR PROSTATE WITHOUT AND WITH CONTRAST")
    psa = round(d.rng.uniform(2.5, 18.0), 1)
    out.indication = d.pick((f"elevated PSA ({psa} ng/mL)", f"rising PSA, {psa} ng/mL", "prior negative biopsy, persistent PSA elevation"))
    out.technique = "multiparametric MRI of the prostate at 3 T: T2-weighted, DWI/ADC and dynamic contrast-enhanced imaging"
    volume = d.randint(25, 90)
    out.findings.append(("Prostate", f"prostate volume {volume} mL; PSA density {round(psa / volume, 2)} ng/mL/cc"))
    cat = "1" if d.random() < 0.12 else _lesion(d, out)
    if cat == "1":
        out.findings.append(("Prostate", f"no focal suspicious {d.absent('lesion')} in the peripheral or transition zone"))
        out.claims.append(Claim("a suspicious lesion", "suspicious lesion", False))
    epe = cat == "5" and d.random() < 0.4
    if epe:
        out.findings.append(("Staging", f"focal {d.present('extraprostatic extension')} at the lesion"))
    else:
        out.findings.append(("Staging", f"no {d.absent('extraprostatic extension')}; seminal vesicles are unremarkable"))
    out.claims.append(Claim("extraprostatic extension", "extraprostatic extension", epe))
    state_category(d, out, "PI-RADS", cat, _MEANING[cat])
    recommend(d, out, "routine clinical follow-up" if cat in ("1", "2") else "MRI-targeted biopsy")
    out.neutrals = ("a renal cyst", "a family history of prostate cancer", "an inguinal hernia")
    return out


def _lesion(d: Dictation, out: Draft) -> str:
    zone = "PZ" if d.random() < 0.7 else "TZ"
    side, level = d.pick(("right", "left")), d.pick(("apex", "mid gland", "base"))
    if zone == "PZ":
        loc = f"{side} posterolateral peripheral zone at the {level}"
    else:
        loc = f"{side} anterior transition zone at the {level}"
    score = d.pick((2, 3, 3, 4, 4, 5))
    size = d.size(1.5, 2.6) if score == 5 else d.size(0.5, 1.4)
    dce = score >= 3 and d.random() < 0.6
    other = d.pick((2, 3, 4, 5)) if zone == "TZ" else 0
    cat = pirads_category(zone, score, dce, other)
    signal = _DWI[score] if zone == "PZ" else f"{_T2[score]}; DWI score {other}"
    signal += "; DCE " + ("positive" if dce else "negative")
    out.findings.append(("Lesion", d.say(_LESION, size=str(size), obs=d.present("lesion"), loc=d.anat(loc), signal=signal)))
    out.claims.append(Claim("a lesion in the " + loc.split(" at ")[0], "lesion in the " + loc.split(" at ")[0], True))
    out.qa.append(ask("size", f"{size} cm", thing="lesion"))
    out.qa.append(ask("location", loc, thing="lesion"))
    out.impression.append(f"{size} cm lesion in the {loc}")
    return cat
