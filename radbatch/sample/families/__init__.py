"""Report families: one module per kind of study, each deciding its facts and writing them.

Every family exposes `draft(d, patient, study, prior) -> Draft`; `prior` is the state a temporal
follow-up starts from (chest_xr and onc_ct only), None otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

from radbatch.sample.draft import Draft
from radbatch.sample.native import activate

activate(__path__, "families")  # compiled family modules first, when current (see radbatch/sample/native.py)
from radbatch.sample.families import (
    adnexa,
    bladder,
    breast,
    chest_xr,
    coronary,
    gallbladder,
    liver,
    lung_screening,
    neck,
    onc_ct,
    prostate,
    thyroid,
)

FAMILIES: dict[str, Callable[..., Draft]] = {
    "chest_xr": chest_xr.draft,
    "onc_ct": onc_ct.draft,
    "birads": breast.draft,
    "tirads": thyroid.draft,
    "lirads": liver.draft,
    "pirads": prostate.draft,
    "orads": adnexa.draft,
    "virads": bladder.draft,
    "cadrads": coronary.draft,
    "nirads": neck.draft,
    "lungrads": lung_screening.draft,
    "gbrads": gallbladder.draft,
}
