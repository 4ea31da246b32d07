"""Split a report into sections, and find in-report comparison statements.

Headers are recognised at the start of a line, case-insensitive, followed by a colon:
  indication:  INDICATION, CLINICAL HISTORY, HISTORY, CLINICAL INFORMATION, REASON FOR EXAM
  technique:   TECHNIQUE, PROCEDURE
  comparison:  COMPARISON, COMPARISONS
  findings:    FINDINGS
  impression:  IMPRESSION, CONCLUSION, CONCLUSIONS, SUMMARY
A section runs to the next recognised header. A report with no FINDINGS header has no findings section
unless it has no headers at all, in which case the whole text counts as findings (dictated free text);
the impression is then unknown. Heads needing a missing section are not_applicable, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADERS = {
    "indication": ("indication", "clinical history", "history", "clinical information", "reason for exam"),
    "technique": ("technique", "procedure"),
    "comparison": ("comparisons", "comparison"),
    "findings": ("findings",),
    "impression": ("impression", "conclusions", "conclusion", "summary"),
}
_NAME = {alias: key for key, aliases in _HEADERS.items() for alias in aliases}
_HEADER_RE = re.compile(
    r"^[ \t]*(" + "|".join(sorted(map(re.escape, _NAME), key=len, reverse=True)) + r")[ \t]*:[ \t]*",
    re.I | re.M)
# A COMPARISON section that names no study: "None.", "None available.", "No prior studies.", "Not available",
# "No comparison available", "N/A". Such a report has nothing to compare with, so the temporal head without a
# prior report does not apply (it used to run on "None available." and invent changes).
_NO_COMPARISON = re.compile(
    r"^\s*(none|n/?a|not available|unavailable|none (available|provided|on file|for comparison)|"
    r"no (prior|previous|comparison|relevant|old)\b[^.]*)\.?\s*$", re.I)
# Words that compare with a prior study. "Interval" only where it describes change ("interval increase"), not in a
# follow-up recommendation ("short-interval follow-up", "interval follow-up in 6 months"), which names no prior.
_COMPARISON_WORDS = re.compile(
    r"\b(compared (to|with)|comparison|prior (study|exam|examination|radiograph|ct|mri?)|previous(ly)?|"
    r"interval(ly)?(?![ -]*follow)|since the (prior|previous|last)|unchanged|no longer|new since|has (increased|decreased))\b",
    re.I)


@dataclass(frozen=True)
class Sections:
    findings: str | None
    impression: str | None
    comparison: str | None
    has_headers: bool


def split_sections(text: str) -> Sections:
    matches = list(_HEADER_RE.finditer(text))
    if not matches:
        return Sections(text.strip() or None, None, None, False)
    found: dict[str, str] = {}
    for m, nxt in zip(matches, matches[1:] + [None]):
        key = _NAME[m.group(1).lower()]
        body = text[m.end(): nxt.start() if nxt else len(text)].strip()
        if body:
            found[key] = (found[key] + "\n" + body) if key in found else body
    return Sections(found.get("findings"), found.get("impression"), found.get("comparison"), True)


def mentions_comparison(text: str, sections: Sections) -> bool:
    """Does the report itself compare with a prior study? (temporal head without a prior report)

    A COMPARISON section decides: one that names no study ("None.") means there is nothing to compare with, even
    where the body keeps template wording such as "new since the prior study"; only a report without that
    section is read for comparison words."""
    if sections.comparison is not None:
        return not _NO_COMPARISON.match(sections.comparison)
    body = "\n".join(s for s in (sections.findings, sections.impression) if s) if sections.has_headers else text
    return bool(_COMPARISON_WORDS.search(body))
