"""Hypothesis statements judged against the FINDINGS section (the NLI head).

Entailment restates a Claim, contradiction flips its polarity, neutral states something the findings
do not address: a finding the family never mentions in this report, or a clinical fact no image shows.
"""

from __future__ import annotations

from radbatch.sample.dictation import Dictation, Options, Variants
from radbatch.sample.draft import Claim, Draft
from radbatch.sample.layout import sentence

_AFFIRM = Variants(
    "there is {phrase}",
    "the findings show {phrase}",
    "{phrase} is present",
    train=("{phrase} is seen", "imaging shows {phrase}"),
    test=("{phrase} is noted", "the study demonstrates {phrase}"),
)
_DENY = Variants(
    "there is no {noun}",
    "no {noun} is seen",
    train=("{noun} is absent",),
    test=("there is no evidence of {noun}", "no {noun} is identified"),
)
# Facts about the patient that no image shows, so no findings section entails or contradicts them.
_CLINICAL = Options(
    "The patient has a history of smoking.",
    "The patient was started on antibiotics yesterday.",
    "The patient is scheduled for surgery next week.",
    "The symptoms began three days ago.",
    train=("The patient reports a family history of cancer.", "The patient is allergic to penicillin."),
    test=("The patient works as a coal miner.", "The patient recently travelled abroad."),
)
_LABELS = ("entailment", "contradiction", "neutral")


def choose_hypothesis(d: Dictation, draft: Draft) -> tuple[str, str]:
    r = d.rng.random()
    label = "entailment" if r < 0.36 else "contradiction" if r < 0.7 else "neutral"
    if not draft.claims:
        label = "neutral"
    if label == "neutral":
        return _neutral(d, draft), label
    claim = d.pick(draft.claims)
    affirm = claim.present == (label == "entailment")
    return _statement(d, claim, affirm), label


def _statement(d: Dictation, claim: Claim, affirm: bool) -> str:
    if affirm:
        return sentence(d.say(_AFFIRM, phrase=claim.phrase))
    return sentence(d.say(_DENY, noun=claim.noun))


def _neutral(d: Dictation, draft: Draft) -> str:
    neutrals = draft.neutrals() if callable(draft.neutrals) else draft.neutrals
    if neutrals and d.random() < 0.7:
        phrase = d.pick(neutrals)
        return sentence(d.say(_AFFIRM, phrase=phrase))
    return d.choose(_CLINICAL)
