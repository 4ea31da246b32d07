"""RADS assignment from an explicit statement: "BI-RADS 4A", "ACR TI-RADS TR4", "LI-RADS LR-5", "Lung-RADS
category 2", "PI-RADS v2.1 score 4", "O-RADS US 3", "CAD-RADS 4A", "NI-RADS 2a", ...

Only what the report states is read: a category the reader would have to infer from the findings (points, size,
features) is not guessed, and a report that states none gets the none answer. When several categories are stated,
the last one counts (the impression comes last and gives the final assessment; earlier mentions are often the
prior study's). Categories are written as the rads_assignment recipe spells them.
"""

from __future__ import annotations

import re

NONE_TEXT = "No applicable RADS"

_SEP = r"(?:\s*(?:category|categories|cat\.?|assessment|score|level|classification|v?\s*[12]\.[01]|" \
       r"version\s*[12](?:\.[01])?|us|mri|ultrasound|:|=|-|\(|#))*\s*"
# system -> (pattern with one group for the category, function mapping the group to the recipe's spelling)
_SYSTEMS: list[tuple[str, str, object]] = [
    ("Lung-RADS", r"\blung[- ]?rads(?:\s*v?\s*1\.1|\s*v?\s*2022)?" + _SEP + r"([0-4][abx]?)(?!\w|\.\d)",
     lambda c: c.upper()),
    ("BI-RADS", r"\bbi[- ]?rads(?:®)?" + _SEP + r"([0-6][abc]?)(?!\w|\.\d)", lambda c: c.upper()),
    ("TI-RADS", r"\b(?:acr[- ]?)?ti[- ]?rads" + _SEP + r"(?:tr\s*-?\s*)?([1-5])(?!\w|\.\d)", lambda c: f"TR{c}"),
    ("TI-RADS", r"(?<![\w-])tr\s*-?\s*([1-5])\b(?=[^.]{0,40}\bnodule|\s*(?:\(|nodule|lesion|thyroid))",
     lambda c: f"TR{c}"),
    ("LI-RADS", r"\bli[- ]?rads" + _SEP + r"(?:lr\s*-?\s*)?(tr[- ](?:nonviable|equivocal|viable)|tiv|m|[1-5])"
     r"(?!\w|\.\d)", lambda c: _lr(c)),
    ("LI-RADS", r"(?<![\w-])lr\s*-\s*(tr[- ](?:nonviable|equivocal|viable)|tiv|m|[1-5])(?!\w|\.\d)", lambda c: _lr(c)),
    ("PI-RADS", r"\bpi[- ]?rads" + _SEP + r"([1-5])(?!\w|\.\d)", str),
    ("O-RADS", r"\bo[- ]?rads" + _SEP + r"([0-5])(?!\w|\.\d)", str),
    ("VI-RADS", r"\bvi[- ]?rads" + _SEP + r"([1-5])(?!\w|\.\d)", str),
    ("CAD-RADS", r"\bcad[- ]?rads" + _SEP + r"(4a|4b|[0-5]|n)(?!\w|\.\d)", lambda c: c.upper()),
    ("NI-RADS", r"\bni[- ]?rads" + _SEP + r"(2a|2b|[1-4])(?!\w|\.\d)", str),
    ("GB-RADS", r"\bgb[- ]?rads" + _SEP + r"([0-5])(?!\w|\.\d)", str),
]
_COMPILED = [(system, re.compile(p), fmt) for system, p, fmt in _SYSTEMS]
# The categories the rules can answer, spelled as recipes/tasks/rads_assignment.toml spells them.
VALID = {
    "BI-RADS": ("0", "1", "2", "3", "4", "4A", "4B", "4C", "5", "6"),
    "TI-RADS": ("TR1", "TR2", "TR3", "TR4", "TR5"),
    "LI-RADS": ("LR-1", "LR-2", "LR-3", "LR-4", "LR-5", "LR-M", "LR-TIV", "LR-TR nonviable", "LR-TR equivocal",
                "LR-TR viable"),
    "PI-RADS": ("1", "2", "3", "4", "5"),
    "O-RADS": ("0", "1", "2", "3", "4", "5"),
    "VI-RADS": ("1", "2", "3", "4", "5"),
    "CAD-RADS": ("0", "1", "2", "3", "4A", "4B", "5", "N"),
    "NI-RADS": ("1", "2", "2a", "2b", "3", "4"),
    "Lung-RADS": ("0", "1", "2", "3", "4A", "4B", "4X"),
    "GB-RADS": ("0", "1", "2", "3", "4", "5"),
}


def _lr(c: str) -> str:
    c = c.replace("-", " ")
    if c.startswith("tr "):
        return "LR-TR " + c[3:]
    return "LR-" + c.upper()


def assign(report: str) -> tuple[str, str] | None:
    """(system, category) of the last stated RADS category, or None."""
    text = report.lower()
    best: tuple[int, str, str] | None = None
    for system, pattern, fmt in _COMPILED:
        for m in pattern.finditer(text):
            category = fmt(m.group(1))
            if category in VALID[system] and (best is None or m.start() > best[0]):
                best = (m.start(), system, category)
    return None if best is None else (best[1], best[2])


def answer(report: str) -> str:
    found = assign(report)
    return NONE_TEXT if found is None else f"{found[0]} {found[1]}"
