"""M stage (distant metastasis) from what a CT report asserts, with the negation/uncertainty scopes of chexpert.

  1. A stated TNM M category ("M1b", "cT3N1M0", "stage M1") wins; the last statement counts.
  2. Else M1 when a distant metastasis is asserted and not negated (chexpert's reading: "consistent with" and
     "likely" assert, "possible" and "cannot be excluded" are doubt): metastases to or in the liver,
     lungs, bones, adrenals, brain, peritoneum or pleura ("hepatic metastases", "osseous metastatic disease",
     "peritoneal carcinomatosis", "malignant pleural effusion", "distant metastatic disease").
  3. Else M0: distant spread that is denied ("no distant metastases"), only possible ("indeterminate hepatic
     lesion, possibly a metastasis") or not mentioned is not evidence of M1 (TNM: equivocal findings stage M0).

Nodal metastases ("metastatic lymph nodes", "nodal metastases") are N, not M, and are not read here. The
report's history / indication sections are left out (radbatch.engines.rules.text): "history of liver metastases" is the
past, not this study's finding.
"""

from __future__ import annotations

import re

from .chexpert import _classify
from .text import findings_text, sentences

_STATED = re.compile(r"(?<![a-z])(?:[cpy]?t(?:[0-4][a-d]?|x|is)\s*,?\s*[cp]?n(?:[0-3][a-c]?|x)\s*,?\s*[cp]?|"
                     r"\b(?:[cp])?|\bstage\s+)m([01])[a-c]?\b")
_ORGANS = r"(?:liver|hepatic|lungs?|pulmonary|bones?|osseous|skeletal|spine|vertebra\w*|adrenals?|brain|cerebral|" \
          r"peritone\w*|omental|pleura\w*|distant|contralateral lung|skin|soft tissue)"
_DISTANT = [re.compile(p) for p in (
    _ORGANS + r"(?: \w+){0,2} metasta\w*",
    r"metasta\w*(?: \w+){0,3} (?:to|in|within|involving|of) (?:the )?(?:\w+ ){0,2}" + _ORGANS,
    r"(?:peritoneal )?carcinomatosis", r"malignant (?:pleural|pericardial) effusion", r"distant (?:spread|disease)",
    r"(?:lytic|blastic|sclerotic) (?:osseous |bone |skeletal )?(?:lesions?|metasta\w*)",
)]
_NODAL = re.compile(r"(?:nodal|lymph node|node|adenopathy)")


def m_stage(report: str) -> str:
    text = findings_text(report)
    stated = list(_STATED.finditer(text.lower()))
    if stated:
        return f"M{stated[-1].group(1)}"
    for s in sentences(text):
        for pattern in _DISTANT:
            for m in pattern.finditer(s):
                if _NODAL.search(m.group(0)):
                    continue
                if _classify("", s, m.start(), m.end()) == "positive":
                    return "M1"
    return "M0"


def answer_m(report: str) -> str:
    return m_stage(report)
