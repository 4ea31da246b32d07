"""Turn a Draft into report text in a given Style, and say what the impression section holds.

The sectionizer radbatch uses finds headers at line start followed by a colon; organ labels
("Lungs:") and titles ("EXAM:") are never one of its header words, so they stay inside sections.
"""

from __future__ import annotations

from typing import NamedTuple

from radbatch.sample.dictation import Dictation
from radbatch.sample.draft import Draft
from radbatch.sample.styles import Style

_BULLETS = {"dashes": "- ", "bullets": "\u2022 "}


class Rendered(NamedTuple):
    text: str
    impression: str | None  # body of the impression section, None when the report has none
    sections: frozenset[str]  # draft parts that made it into the text (for entity gold)


def sentence(s: str) -> str:
    """Capitalised, with a final period; families write lower-case fragments without one."""
    return _SENTENCES.get(s) or _sentence(s)


# fragment -> sentence: about four in five fragments of an archive repeat one seen before, and a dict
# lookup is cheaper than slicing and joining; cleared when full, so memory stays bounded
_SENTENCES: dict[str, str] = {}
_SENTENCES_MAX = 50_000


def _sentence(s: str) -> str:
    if not s:
        return s
    if len(_SENTENCES) >= _SENTENCES_MAX:
        _SENTENCES.clear()
    out = _SENTENCES[s] = s[0].upper() + s[1:] + ("" if s[-1] in ".?!" else ".")
    return out


_WITH_IMPRESSION = frozenset({"findings", "assessment", "impression"})
_WITHOUT_IMPRESSION = frozenset({"findings", "assessment"})


def render(d: Dictation, draft: Draft, style: Style, comparison: str, title: str, footer: str, prior: bool = False) -> Rendered:
    """`prior`: the comparison names a prior study, which even a headerless report then mentions."""
    # sentence() inlined: this runs for every finding of every report
    known = _SENTENCES.get
    findings = [(g, known(s) or _sentence(s)) for g, s in draft.findings]
    if style.artefacts:
        findings = _slip(d, findings)
    has_impression = bool(draft.impression or draft.assessment) and "impression" not in style.dropped and not style.headerless
    if has_impression:
        items = [known(s) or _sentence(s) for s in draft.impression + draft.assessment]
        form = style.impression_form
        if form == "prose" or len(items) == 1:
            impression = " ".join(items)
        elif form == "numbered":
            impression = "\n".join([f"{i}. {s}" for i, s in enumerate(items, 1)])
        else:
            impression = _list_body(items, form)
    else:
        impression = ""
        findings += [("Assessment", known(s) or _sentence(s)) for s in draft.assessment]
    if style.findings_form == "prose":  # the common case, without the call
        findings_body = " ".join([s for _, s in findings])
    else:
        findings_body = _findings_body(findings, style.findings_form)
    indication, technique = draft.indication, draft.technique
    bodies = {
        "indication": (known(indication) or _sentence(indication)) if indication else "",
        "technique": (known(technique) or _sentence(technique)) if technique else "",
        "comparison": comparison,
        "findings": findings_body,
        "impression": impression,
    }
    text = _headerless(bodies, draft, findings, prior) if style.headerless else _with_headers(bodies, style)
    if title:
        text = f"{title}\n\n{text}\n\n{footer}" if footer else f"{title}\n\n{text}"
    elif footer:
        text = f"{text}\n\n{footer}"
    if style.caps:
        text, impression = text.upper(), impression.upper()
    shown = _WITH_IMPRESSION if has_impression or style.headerless else _WITHOUT_IMPRESSION
    return _new(Rendered, (text, impression or None, shown))


_new = tuple.__new__  # a NamedTuple's own constructor is a slower Python-level lambda
_NL = "\n"


def _with_headers(bodies: dict[str, str], style: Style) -> str:
    dropped, headers = style.dropped, style.headers
    if style.inline:
        blocks = [
            f"{headers[section]}:{_NL if _NL in body else ' '}{body}"
            for section in style.order
            if (body := bodies[section]) and section not in dropped
        ]
    else:
        blocks = [f"{headers[section]}:\n{body}" for section in style.order if (body := bodies[section]) and section not in dropped]
    return "\n\n".join(blocks)


def _headerless(bodies: dict[str, str], draft: Draft, findings: list[tuple[str, str]], prior: bool) -> str:
    """Old free-text reports: paragraphs only; the closing summary is not a findable impression."""
    compared = "Compared with " + bodies["comparison"][0].lower() + bodies["comparison"][1:] if prior else ""
    paragraphs = [bodies["indication"], compared, " ".join(s for _, s in findings)]
    paragraphs.append(" ".join(sentence(s) for s in draft.impression))
    return "\n\n".join(p for p in paragraphs if p)


def _findings_body(findings: list[tuple[str, str]], form: str) -> str:
    if form == "lines":
        return "\n".join(s for _, s in findings)
    if form == "organs":
        groups: dict[str, list[str]] = {}
        for group, s in findings:
            groups.setdefault(group, []).append(s)
        return "\n".join(f"{g}: {' '.join(ss)}" for g, ss in groups.items())
    return " ".join(s for _, s in findings)


def _list_body(items: list[str], form: str) -> str:
    if form == "prose" or len(items) == 1:
        return " ".join(items)
    if form == "numbered":
        return "\n".join([f"{i}. {s}" for i, s in enumerate(items, 1)])
    if form == "paren":
        return "\n".join([f"{i}) {s}" for i, s in enumerate(items, 1)])
    return "\n".join([_BULLETS[form] + s for s in items])


def _slip(d: Dictation, findings: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """One voice-recognition slip; never inside an entity phrase, so entity gold still holds."""
    i = d.below(len(findings))
    group, s = findings[i]
    kind = d.below(4)
    if kind == 0 and s.startswith("The "):  # only at the start: mid-sentence it could split a cue
        s = "The the " + s[4:]
    elif kind == 1:
        s = s[:-1] + " period."
    elif kind == 2:
        s = s + " [inaudible]"
    else:
        s = s[0].lower() + s[1:]
    return findings[:i] + [(group, s)] + findings[i + 1 :]
