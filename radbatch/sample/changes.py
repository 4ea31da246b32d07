"""Wording of interval change for follow-up reports (the temporal_comparison head).

A cue is the phrase the gold quotes: the change verb and the finding, contiguous in the text
("increased right pleural effusion", "subcarinal lymph node has decreased"). The tail after it
("now moderate", "compared with the prior study") is not part of the cue.
"""

from __future__ import annotations

from radbatch.sample.dictation import Dictation, Options, Variants

CLASSES = ("new", "worsened", "improved", "resolved", "unchanged")

_CUES = {
    "worsened": Variants(
        "increased {np}", "worsening {np}", "{np} has increased", train=("worsened {np}",), test=("progression of the {np}",)
    ),
    "improved": Variants(
        "decreased {np}",
        "improving {np}",
        "{np} has decreased",
        train=("improved {np}",),
        test=("interval improvement of the {np}", "{np} has improved"),
    ),
    "resolved": Variants(
        "resolved {np}",
        "{np} has resolved",
        "interval resolution of the {np}",
        train=("previously seen {np} has resolved",),
        test=("{np} is no longer seen",),
    ),
    "unchanged": Variants(
        "unchanged {np}", "stable {np}", "{np} is unchanged", train=("{np} is stable",), test=("persistent {np}",)
    ),
    "new": Variants("new {np}", "interval development of {np}", train=("{np} is new",), test=("newly developed {np}",)),
}
_TAILS = {
    "worsened": Options("", ", now {sev}", " compared with the prior study", test=(" since the previous examination",)),
    "improved": Options("", ", now {sev}", " compared with the prior study", test=(" since the previous examination",)),
    "resolved": Options("", " since the prior study", test=(" since the previous examination",)),
    "unchanged": Options("", " compared with the prior study", test=(" since the previous examination",)),
    "new": Options("", " since the prior study", test=(" since the previous examination",)),
}


def change_sentence(d: Dictation, change: str, np: str, entity: str, sev: str = "") -> tuple[str, dict[str, str]]:
    """The sentence for one change, and its gold record {change, cue, entity}."""
    cue = d.say(_CUES[change], np=np)
    tail = d.choose(_TAILS[change])
    if "{sev}" in tail:
        tail = tail.format(sev=sev) if sev else ""
    return cue + tail, {"change": change, "cue": cue.lower(), "entity": entity.lower()}


def cue_only(d: Dictation, change: str, np: str) -> str:
    """The change restated (for an impression), without a gold record."""
    return d.say(_CUES[change], np=np)
