"""A drafted report: the facts decided for one study, and the sentences written from them.

Families (radbatch/sample/families/) fill a Draft; the layout turns it into report text. Gold comes from
the facts here, never from reading the text back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable, Sequence
from typing import NamedTuple


class Claim(NamedTuple):
    """A finding the FINDINGS section states plainly, for NLI hypotheses and yes/no questions.

    `phrase` is a noun phrase with its article ("a small right pleural effusion"), `noun` the bare
    finding ("pleural effusion"); `present` says whether the findings affirm or deny it."""

    phrase: str
    noun: str
    present: bool


@dataclass
class Draft:
    family: str
    modality: str
    exam: str = ""  # the title line's exam name; the modality column when empty
    indication: str | None = None
    technique: str | None = None
    # (organ group, sentence); sentences start lower- or upper-case and carry no final period
    findings: list[tuple[str, str]] = field(default_factory=list)
    # summary items: they live in the impression section and vanish with it
    impression: list[str] = field(default_factory=list)
    # RADS category and recommendation: the impression if there is one, else the end of the findings
    assessment: list[str] = field(default_factory=list)
    rads: tuple[str, str] | None = None
    chexpert: dict[str, str] | None = None
    n_stage: str | None = None
    m_stage: str | None = None
    changes: list[dict[str, str]] | None = None
    claims: list[Claim] = field(default_factory=list)
    # noun phrases the findings do not address (neutral hypotheses); a callable when costly to list,
    # since only the reports that get a neutral hypothesis need them
    neutrals: Sequence[str] | Callable[[], Sequence[str]] = ()
    # extractive questions (qa.Question); answers occur verbatim in findings or assessment
    qa: list = field(default_factory=list)
    # what a follow-up study of the same patient starts from (temporal pairs)
    state: object = None

    def finding(self, group: str, sentence: str) -> None:
        self.findings.append((group, sentence))


def article(phrase: str) -> str:
    """'a'/'an' + phrase, by the first letter (good enough for the generator's own vocabulary)."""
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase
