"""Patients: identities, split, demographics and the studies each one has, in date order.

Everything about patient number `index` is a function of (seed, index) alone, so an archive does not
depend on batch size or worker count, and `--split test` writes exactly the test patients that
`--split all` would (all but the last patient, which may be cut to fit --rows).
"""

from __future__ import annotations

import bisect
import itertools
import random
from typing import NamedTuple

MAX_STUDIES = 8  # per patient; report and accession numbers are index * MAX_STUDIES + study
_EPOCH_2012 = 15340  # 2012-01-01 in days since 1970-01-01
_SPAN_DAYS = 4500  # first studies fall in 2012..2024

# family -> share of patients; the RADS systems share the rest equally
FAMILY_WEIGHTS = {
    "chest_xr": 0.28,
    "onc_ct": 0.14,
    **dict.fromkeys(
        ("birads", "tirads", "lirads", "pirads", "orads", "virads", "cadrads", "nirads", "lungrads", "gbrads"),
        0.058,
    ),
}
PAIR_RATE = {"chest_xr": 0.3, "onc_ct": 0.35}  # patients with a same-modality follow-up
_SEX = {"birads": "F", "orads": "F", "pirads": "M"}
_FAMILIES = tuple(FAMILY_WEIGHTS)
_CUMULATIVE = tuple(itertools.accumulate(FAMILY_WEIGHTS.values()))


class Study(NamedTuple):  # NamedTuple, not a frozen dataclass: built millions of times
    family: str
    day: int  # days since 1970-01-01
    role: str  # "single", "prior" (first of a temporal pair) or "follow_up"
    number: int  # position in the patient's history


class Patient(NamedTuple):
    index: int
    patient_id: str
    split: str
    sex: str
    age: int
    studies: tuple[Study, ...]


def mix64(x: int) -> int:
    """splitmix64 finaliser: a cheap, well-spread hash for ids and split assignment."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def seed_key(seed: int) -> int:
    return mix64(seed & 0xFFFFFFFFFFFFFFFF)


def split_of(key: int, index: int) -> str:
    """~80/10/10 train/dev/test by patient."""
    bucket = mix64(key ^ (index * 0x2545F4914F6CDD1D & 0xFFFFFFFFFFFFFFFF)) % 100
    return "train" if bucket < 80 else "dev" if bucket < 90 else "test"


def patient_rng(key: int, index: int) -> random.Random:
    return random.Random((key << 40) | index)


def _between(rng: random.Random, low: int, high: int) -> int:
    """random.randint without its Python-level overhead (called millions of times)."""
    return low + int(rng.random() * (high - low + 1))


def plan_patient(rng: random.Random, key: int, index: int, split: str) -> Patient:
    family = _family(rng)
    sex = _SEX.get(family) or ("F" if rng.random() < 0.5 else "M")
    first = _EPOCH_2012 + int(rng.random() * _SPAN_DAYS)
    studies = [(family, first, "single")]
    if rng.random() < PAIR_RATE.get(family, 0.0):
        gap = _between(rng, 1, 120) if family == "chest_xr" else _between(rng, 60, 240)
        studies = [(family, first, "prior"), (family, first + gap, "follow_up")]
    if rng.random() < 0.2:
        other = _other_study(rng, sex, studies)
        studies = [other, *studies] if other[1] < first else [*studies, other]
    age = _between(rng, 45, 85) if family in ("lungrads", "pirads", "onc_ct") else _between(rng, 25, 88)
    return Patient(
        index,
        f"MRN{(index * 48271 + key) % 10**8:08d}",
        split,
        sex,
        age,
        tuple([Study(f, day, role, n) for n, (f, day, role) in enumerate(studies)]),
    )


def _family(rng: random.Random) -> str:
    return _FAMILIES[bisect.bisect(_CUMULATIVE, rng.random() * _CUMULATIVE[-1])]


def _other_study(rng: random.Random, sex: str, studies: list) -> tuple[str, int, str]:
    """An unrelated study, well before or after the others so it never sits inside a pair."""
    family = _family(rng)
    while _SEX.get(family, sex) != sex:
        family = _family(rng)
    if rng.random() < 0.5:
        day = studies[0][1] - _between(rng, 30, 900)
    else:
        day = studies[-1][1] + _between(rng, 30, 900)
    return (family, day, "single")


def report_id(key: int, index: int, number: int) -> str:
    """Unique per archive: a bijection of (patient, study) onto 40 bits, printed as hex."""
    n = index * MAX_STUDIES + number
    return f"R{(n * 0x9E3779B97F + key) & (2**40 - 1):010x}"


def accession(key: int, index: int, number: int, day: int) -> str:
    n = index * MAX_STUDIES + number
    year = 1970 + day * 4 // 1461
    return f"ACC{year % 100:02d}{(n * 7919 + (key >> 20)) % 10**8:08d}"
