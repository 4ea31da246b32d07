"""A drafted report: the facts decided for one study, and the sentences written from them.

Families (radbatch/sample/families/) fill a Draft; the layout turns it into report text. Gold comes from
the facts here, never from reading the text back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple


class Claim(NamedTuple):
    """A finding the FINDINGS section states plainly, for NLI hypotheses and yes/no questions.

    `phrase` is a noun phrase with its article ("a small right pleural effusion"), `noun` the bare
    finding ("pleural effusion"); `present` says whether the findings affirm or deny it."""

    phrase: str
    noun: str
    present: bool


class Draft:
    """A plain class with __slots__ rather than a dataclass: one is built per report, and the
    dataclass __init__ (keyword defaults, five list factories) cost more than the few lines below."""

    __slots__ = (
        "family", "modality", "exam", "indication", "technique", "findings", "impression", "assessment", "rads",
        "chexpert", "n_stage", "m_stage", "changes", "claims", "neutrals", "qa", "state",
    )  # fmt: skip

    def __init__(self, family: str, modality: str, exam: str = "") -> None:
        self.family = family
        self.modality = modality
        self.exam = exam  # the title line's exam name; the modality column when empty
        self.indication: str | None = None
        self.technique: str | None = None
        # (organ group, sentence); sentences start lower- or upper-case and carry no final period
        self.findings: list[tuple[str, str]] = []
        # summary items: they live in the impression section and vanish with it
        self.impression: list[str] = []
        # RADS category and recommendation: the impression if there is one, else the end of the findings
        self.assessment: list[str] = []
        self.rads: tuple[str, str] | None = None
        self.chexpert: dict[str, str | None] | None = None
        self.n_stage: str | None = None
        self.m_stage: str | None = None
        self.changes: list[dict[str, str]] | None = None
        self.claims: list[Claim] = []
        # noun phrases the findings do not address (neutral hypotheses); a callable when costly to list,
        # since only the reports that get a neutral hypothesis need them
        self.neutrals: Sequence[str] | Callable[[], Sequence[str]] = ()
        # extractive questions (qa.Question); answers occur verbatim in findings or assessment
        self.qa: list = []
        # what a follow-up study of the same patient starts from (temporal pairs)
        self.state: object = None

    def finding(self, group: str, sentence: str) -> None:
        self.findings.append((group, sentence))


def article(phrase: str) -> str:
    """'a'/'an' + phrase, by the first letter (good enough for the generator's own vocabulary)."""
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase
