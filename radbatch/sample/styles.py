"""How a radiologist lays out a report: header words and case, section order, list formats, footers.

Each component is partitioned by split like the phrasings (see dictation.Options): the test split
meets header words ("CLINICAL INFORMATION", "CONCLUSION"), list formats (bullets, "1)"), organ-labelled
findings and date formats that train and dev never use; train has a few of its own (impression first,
"HISTORY", dashes) that test never sees.
"""

from __future__ import annotations

import functools

from typing import NamedTuple

from radbatch.sample.dictation import Dictation, Options

SECTIONS = ("indication", "technique", "comparison", "findings", "impression")

_INDICATION_WORD = Options("INDICATION", "CLINICAL HISTORY", train=("HISTORY",), test=("CLINICAL INFORMATION",))
_IMPRESSION_WORD = Options("IMPRESSION", "IMPRESSION", train=(), test=("CONCLUSION",))
_HEADER_CASE = Options("upper", "upper", "title", test=("lower",))
_ORDER = Options(
    SECTIONS,
    SECTIONS,
    ("indication", "comparison", "technique", "findings", "impression"),
    train=(("impression", "indication", "technique", "comparison", "findings"),),
    test=(("comparison", "indication", "findings", "impression", "technique"),),
)
_FINDINGS_FORM = Options("prose", "prose", "lines", test=("organs",))
_IMPRESSION_FORM = Options("numbered", "prose", "numbered", train=("dashes",), test=("bullets", "paren"))
_TITLE = Options("EXAM: {exam}", "{exam}", "", train=("EXAMINATION: {exam}",), test=("Procedure: {exam}", "Study: {exam}"))
_FOOTER = Options(
    "",
    "Electronically signed by {doctor} on {date}.",
    train=("Dictated by: {doctor}",),
    test=("Report verified by {doctor}, {date}.",),
)
_DATE_FORMAT = Options("%Y-%m-%d", train=("%m/%d/%Y",), test=("%d %B %Y", "%d.%m.%Y"))


class Style(NamedTuple):  # NamedTuple: one per report, cheap to build
    headers: dict[str, str]
    inline: bool  # "FINDINGS: text" rather than a header line of its own
    order: tuple[str, ...]
    findings_form: str
    impression_form: str
    caps: bool  # whole report in capitals, as older RIS exports are
    headerless: bool
    title: str
    footer: str
    date_format: str
    dropped: frozenset[str]
    artefacts: bool  # voice-recognition slips


def choose_style(d: Dictation, follow_up: bool) -> Style:
    """A layout for one report; follow-ups always keep their comparison section."""
    r = d.random
    # d.choose inlined (pool[int(r() * len(pool))], the same draw): ten choices per report
    case, indication, impression, order, findings, listing, title, footer, dates = _POOLS[d.pool]
    # tuple.__new__ with the fields in declaration order (and so in draw order): a NamedTuple's own
    # constructor is a Python-level lambda, and keyword arguments cost more again
    return _new(
        Style,
        (
            _headers(
                case[int(r() * len(case))], indication[int(r() * len(indication))], impression[int(r() * len(impression))]
            ),
            r() < 0.5,  # inline
            order[int(r() * len(order))],
            findings[int(r() * len(findings))],
            listing[int(r() * len(listing))],
            r() < 0.04,  # caps
            r() < 0.06,  # headerless
            title[int(r() * len(title))],
            footer[int(r() * len(footer))],
            dates[int(r() * len(dates))],
            _dropped(r, follow_up),
            r() < 0.12,  # artefacts
        ),
    )


# per split pool (0 train/dev, 1 test): the alternatives of each choice, in choose_style's draw order
_POOLS = tuple(
    tuple(options.pools[pool] for options in (
        _HEADER_CASE, _INDICATION_WORD, _IMPRESSION_WORD, _ORDER, _FINDINGS_FORM, _IMPRESSION_FORM, _TITLE, _FOOTER,
        _DATE_FORMAT,
    ))  # fmt: skip
    for pool in (0, 1)
)
_new = tuple.__new__


@functools.cache
def _headers(case: str, indication: str, impression: str) -> dict[str, str]:
    """Header words of one layout; a handful of combinations, built once each (do not mutate)."""
    words = {
        "indication": indication,
        "technique": "TECHNIQUE",
        "comparison": "COMPARISON",
        "findings": "FINDINGS",
        "impression": impression,
    }
    return {k: _cased(v, case) for k, v in words.items()}


def _cased(word: str, case: str) -> str:
    if case == "title":
        return word.title()
    return word.lower() if case == "lower" else word


def _dropped(r, follow_up: bool) -> frozenset[str]:
    """Sections this report leaves out; most keep all (the common case returns a shared empty set)."""
    dropped = [s for s, p in _DROP_RATES if r() < p and not (follow_up and s == "comparison")]
    return frozenset(dropped) if dropped else _NOTHING


_DROP_RATES = (("indication", 0.08), ("technique", 0.2), ("comparison", 0.15), ("impression", 0.05))
_NOTHING: frozenset[str] = frozenset()
