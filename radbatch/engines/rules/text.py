"""Report text -> the sentences a rule labeller reads: sections that describe the patient's history or the
request (indication, history, reason, technique, comparison) are left out, the rest is split into sentences.

Free-text radiology reports wrap lines mid-sentence, so lines are joined within a paragraph; sentences end at
'.', '?', '!' or ';' (not inside a number such as 3.4 cm), at blank lines and at list numbers ("1. ", "2) ").
"""

from __future__ import annotations

import re

# Section headers whose text is not a finding of this study (what was asked, how it was done, the past).
SKIPPED_SECTIONS = ("indication", "clinical indication", "history", "clinical history", "reason for exam",
                    "reason for examination", "reason for study", "reason", "clinical information",
                    "clinical data", "technique", "comparison", "comparisons", "examination", "exam",
                    "procedure", "type of exam", "notification", "recommendation", "recommendations",
                    "history and reason", "reason for exam and history", "clinical question", "indications")
_HEADER = re.compile(r"^\s*([A-Z][A-Z /&()-]{1,40}?)\s*:", re.MULTILINE)
_BLANK = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"(?<!\d)[.?!;](?!\d)|(?<=\d)[.](?!\d)|\n\s*\n|\n\s*(?=\d{1,2}[.)]\s)")


def findings_text(report: str) -> str:
    """The report without its skipped sections. A header is an upper-case word group ending in ':' at a line
    start; its section runs to the next header. Text before any header is kept."""
    kept, pos, skipping = [], 0, False
    for m in _HEADER.finditer(report):
        kept.append(_section_body(report[pos:m.start()], skipping))
        name = re.sub(r"\s+", " ", m.group(1)).strip().lower()
        skipping = name in SKIPPED_SECTIONS
        pos = m.end()
    kept.append(_section_body(report[pos:], skipping))
    return "\n\n".join(k for k in kept if k.strip())


def _section_body(text: str, skipped: bool) -> str:
    """A skipped section ends at its first blank line (reports often go on without a new header)."""
    if not skipped:
        return text
    parts = _BLANK.split(text.strip("\n"), maxsplit=1)
    return parts[1] if len(parts) > 1 else ""


def sentences(text: str) -> list[str]:
    """Lower-cased sentences with whitespace collapsed; empty pieces dropped."""
    out = []
    for piece in _SENTENCE_END.split(text):
        s = re.sub(r"\s+", " ", piece).strip().lower()
        s = re.sub(r"^\d{1,2}[.)]\s*", "", s)
        if re.search(r"[a-z]", s):
            out.append(s)
    return out
