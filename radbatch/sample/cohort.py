"""Patients: identities, split, demographics and the studies each one has, in date order.

Everything about patient number `index` is a function of (seed, index) alone, so an archive does not
depend on batch size or worker count, and `--split test` writes exactly the test patients that
`--split all` would (all but the last patient, which may be cut to fit --rows).
"""

from __future__ import annotations

import _random
import bisect
import itertools
import random
from typing import NamedTuple

import numpy as np
import pyarrow as pa

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
    index: int  # type: ignore[assignment]  # shadows tuple.index, which nothing here calls
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


_RNG = random.Random()
_SEED = _random.Random.seed  # the C seeding that random.Random.seed wraps


def reseeded_rng(key: int, index: int) -> random.Random:
    """This process's one generator, reseeded for patient `index`: the same stream as
    patient_rng(key, index) without building a Random per patient (seeding dominates the cost).
    Valid until the next call; generation is one patient at a time in each process."""
    _SEED(_RNG, (key << 40) | index)
    _RNG.gauss_next = None  # type: ignore[attr-defined]  # what random.Random.seed also resets
    return _RNG


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
    # tuple.__new__ directly: a NamedTuple's own constructor is a Python-level lambda, several times slower
    return _new(
        Patient,
        (
            index,
            f"MRN{(index * 48271 + key) % 10**8:08d}",
            split,
            sex,
            age,
            tuple([_new(Study, (f, day, role, n)) for n, (f, day, role) in enumerate(studies)]),
        ),
    )


_new = tuple.__new__


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


# -- the same ids for a whole block at once (numpy): the archive writer's path ------------------------
# report_id and accession above are the reference; these compute them for arrays of study numbers
# n = index * MAX_STUDIES + number (tests/test_sample_fast.py holds the two together).


def report_ids(key: int, n: np.ndarray) -> pa.Array:
    v = (n.astype(np.uint64) * np.uint64(0x9E3779B97F) + np.uint64(key)) & np.uint64(2**40 - 1)  # wraps mod 2**64
    return _fixed_width(b"R", _digits(v, 10, 16))


def accessions(key: int, n: np.ndarray, day: np.ndarray) -> pa.Array:
    year = (1970 + day.astype(np.int64) * 4 // 1461) % 100
    v = (n.astype(np.uint64) * np.uint64(7919) + np.uint64(key >> 20)) % np.uint64(10**8)
    return _fixed_width(b"ACC", np.hstack([_digits(year.astype(np.uint64), 2, 10), _digits(v, 8, 10)]))


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def _digits(v: np.ndarray, width: int, base: int) -> np.ndarray:
    """(len(v), width) ASCII digits of v, most significant first, zero-padded."""
    powers = np.uint64(base) ** np.arange(width - 1, -1, -1, dtype=np.uint64)
    return _HEX[(v[:, None] // powers) % np.uint64(base)]


def _fixed_width(prefix: bytes, digits: np.ndarray) -> pa.Array:
    """A string array of prefix + each row of digits, built from buffers (no Python strings)."""
    rows, width = len(digits), len(prefix) + digits.shape[1]
    data = np.empty((rows, width), np.uint8)
    data[:, : len(prefix)] = np.frombuffer(prefix, np.uint8)
    data[:, len(prefix) :] = digits
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(data))
