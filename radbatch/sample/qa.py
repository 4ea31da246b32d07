"""Question and short answer per report (the QA head).

Extractive questions (size, location, category, recommendation, change) have answers that occur
verbatim in the report; yes/no questions ask about a Claim the findings state plainly.
"""

from __future__ import annotations

from typing import NamedTuple

from radbatch.sample.dictation import Dictation, Variants
from radbatch.sample.draft import Draft

_QUESTIONS = {
    "category": Variants(
        "What {system} category was assigned?",
        "What is the {system} category?",
        train=("Which {system} score does the report give?",),
        test=("Which {system} assessment applies to this study?",),
    ),
    "size": Variants(
        "How large is the {thing}?",
        "What is the size of the {thing}?",
        train=("What size is the {thing}?",),
        test=("What does the {thing} measure?",),
    ),
    "location": Variants(
        "Where is the {thing}?",
        "What is the location of the {thing}?",
        train=("Where is the {thing} located?",),
        test=("In which location is the {thing} seen?",),
    ),
    "side": Variants(
        "On which side is the {thing}?",
        "Which side is the {thing} on?",
        train=("Is the {thing} on the right or the left?",),
        test=("What is the laterality of the {thing}?",),
    ),
    "recommendation": Variants(
        "What is recommended?",
        "What follow-up is recommended?",
        train=("What is the recommended next step?",),
        test=("Which management does the radiologist suggest?",),
    ),
    "change": Variants(
        "How has the {thing} changed since the prior study?",
        "What happened to the {thing} compared with the prior exam?",
        train=("How does the {thing} compare with before?",),
        test=("Describe the interval change of the {thing}.",),
    ),
    "tip": Variants(
        "Where does the {thing} terminate?",
        "Where is the tip of the {thing}?",
        train=("Where is the {thing} positioned?",),
        test=("What is the position of the {thing} tip?",),
    ),
    "nodes": Variants(
        "Which lymph node station is enlarged?",
        "Where is the largest enlarged lymph node?",
        train=("Which nodal station is involved?",),
        test=("Name the enlarged nodal station.",),
    ),
}

_PRESENCE = Variants(
    "Is there {phrase}?",
    "Does the study show {phrase}?",
    train=("Is {phrase} present?",),
    test=("Was {phrase} identified?",),
)


class Question(NamedTuple):
    """An extractive question, worded only if it is the one chosen (wording costs time)."""

    kind: str
    answer: str
    fields: dict[str, str]


def ask(kind: str, answer: str, **fields: str) -> Question:
    return _new(Question, (kind, answer, fields))  # a NamedTuple's own constructor is slower


_new = tuple.__new__


def choose_question(d: Dictation, draft: Draft) -> tuple[str, str]:
    """One (question, answer) for the report: extractive when the family offers one, else yes/no."""
    if draft.qa and (not draft.claims or d.random() < 0.6):
        kind, answer, fields = d.pick(draft.qa)
        return d.say(_QUESTIONS[kind], **fields), answer
    claim = d.pick(draft.claims)
    return d.say(_PRESENCE, phrase=claim.phrase), "Yes" if claim.present else "No"
