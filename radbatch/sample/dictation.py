"""The per-report writing context: which phrasings a split may use, and the entities a report states.

Every fact has several phrasings (`Variants`), partitioned into shared, train-only and test-only ones,
so that a model trained on the train split meets wording in the test split that it never saw.
Dev reports use the train phrasings. `Dictation` draws from the partition of the report's split and
records each RadGraph entity as the text is written, so NER gold is exactly what the text says.
"""

from __future__ import annotations

import random
from string import Formatter

SPLITS = ("train", "dev", "test")
_POOL_OF_SPLIT = {"train": 0, "dev": 0, "test": 1}  # dev writes like train

ANAT, PRESENT, UNCERTAIN, ABSENT = "ANAT-DP", "OBS-DP", "OBS-U", "OBS-DA"


class Options:
    """Alternatives for one choice, partitioned by split: `shared` ones any split may use, `train`
    ones that test reports never use, `test` ones that train and dev reports never use."""

    __slots__ = ("pools",)

    def __init__(self, *shared, train: tuple = (), test: tuple = ()):
        self.pools = (shared + tuple(train), shared + tuple(test))
        if not all(self.pools):
            raise ValueError(f"options need an alternative for every split: {shared, train, test}")


class Variants(Options):
    """Phrasings of one fact as str.format templates. All must use the same fields, because entity
    fields are recorded (see Dictation.anat) before the template is chosen.

    `pools` keeps the str.format templates; `printf` holds the same templates as %-format strings,
    which Dictation.say fills: %-formatting a dict is about twice as fast as str.format(**fields),
    and say runs several times per report (same text either way: every field is plain `{name}`)."""

    __slots__ = ("printf",)

    def __init__(self, *shared: str, train: tuple[str, ...] = (), test: tuple[str, ...] = ()):
        super().__init__(*shared, train=train, test=test)
        templates = shared + tuple(train) + tuple(test)
        if len({_fields(t) for t in templates}) != 1:
            raise ValueError(f"variants use different fields: {templates}")
        self.printf = tuple(tuple(_printf(t) for t in pool) for pool in self.pools)


def _fields(template: str) -> frozenset[str]:
    return frozenset(name for _, name, _, _ in Formatter().parse(template) if name)


def _printf(template: str) -> str:
    """`template` as a %-format string; only literal text and bare `{name}` fields are allowed."""
    out = []
    for literal, name, spec, conversion in Formatter().parse(template):
        out.append(literal.replace("%", "%%"))
        if name is None:
            continue
        if spec or conversion or not name.isidentifier():
            raise ValueError(f"variant fields must be plain {{name}}: {template!r}")
        out.append(f"%({name})s")
    return "".join(out)


class Dictation:
    """Writes one report: random choices, split-aware phrasing, and the entities it has written.

    Entities are kept per section because the layout may drop a section (say, the impression)."""

    __slots__ = ("rng", "random", "split", "pool", "entities", "section", "terse")

    def __init__(self, rng: random.Random, split: str, terse: bool = False):
        self.rng = rng
        self.random = rng.random  # bound once: every choice below calls it
        self.split = split
        self.pool = _POOL_OF_SPLIT[split]
        self.entities: list[tuple[str, str, str]] = []
        self.section = "findings"
        self.terse = terse  # this radiologist abbreviates (RLL, PTX, ETT)

    # -- choices ---------------------------------------------------------------------------------
    # rng.choice goes through Python-level _randbelow; indexing by random() is about 3x cheaper and
    # every report makes dozens of choices.
    def say(self, variants: Variants, **fields: str) -> str:
        pool = variants.printf[self.pool]
        return pool[int(self.random() * len(pool))] % fields

    def choose(self, options: Options):
        """One alternative allowed in this report's split."""
        pool = options.pools[self.pool]
        return pool[int(self.random() * len(pool))]

    def pick(self, seq):
        """One of a plain sequence: facts and numbers, not wording (no split partition)."""
        return seq[int(self.random() * len(seq))]

    def chance(self, p: float) -> bool:
        return self.random() < p

    def randint(self, low: int, high: int) -> int:
        """Like random.randint, inclusive, without its Python-level overhead."""
        return low + int(self.random() * (high - low + 1))

    def below(self, n: int) -> int:
        return int(self.random() * n)

    def size(self, low: float, high: float) -> float:
        """A measurement in cm, one decimal, as radiologists dictate it."""
        return round(low + (high - low) * self.random(), 1)

    # -- entities (RadGraph labels); stored as written, lower-cased only when gold asks for them ------
    def anat(self, text: str) -> str:
        self.entities.append((self.section, text, ANAT))
        return text

    def present(self, text: str) -> str:
        self.entities.append((self.section, text, PRESENT))
        return text

    def uncertain(self, text: str) -> str:
        self.entities.append((self.section, text, UNCERTAIN))
        return text

    def absent(self, text: str) -> str:
        self.entities.append((self.section, text, ABSENT))
        return text

    def entities_in(self, sections: frozenset[str]) -> list[dict[str, str]]:
        """Entities of the rendered sections, lower-cased, first mention of each (text, label) only."""
        seen: set[tuple[str, str]] = set()
        out = []
        for section, text, label in self.entities:
            key = (text.lower(), label)
            if section in sections and key not in seen:
                seen.add(key)
                out.append({"text": key[0], "label": label})
        return out
