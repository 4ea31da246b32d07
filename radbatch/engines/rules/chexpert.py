"""A rule labeller for the 14 CheXpert labels of a chest radiograph report, negation- and uncertainty-aware.

In the spirit of the CheXpert labeller (Irvin et al. 2019) and NegEx (Chapman et al. 2001): each label has a
list of mention patterns; every mention found in a finding sentence (radbatch.engines.rules.text) is classified

  negative   a negation cue before it in its clause ("no", "without", "free of", "negative for", "no evidence
             of", "resolution of", "removal of", "normal ...") or after it ("... has resolved", "is not seen",
             "... was removed", "... is absent");
  uncertain  an uncertainty cue in its clause ("may", "possible", "cannot be excluded", "versus", "question of",
             "concerning for", "suggestive of", "vs", "or" between two findings, "?", "evaluate for", ...);
  positive   otherwise.

Pseudo-negations are not negations: "no change in the effusion", "no significant interval change",
"no increase in", "no longer" is one (negative), "not significantly changed" is positive. A negation's scope ends
at a clause boundary: "but", "however", "although", "which", "aside from", "except", "with the exception of", a
semicolon, or "and"/"," followed by a new assertion ("and there is", ", the heart is"). Mentions of one label
combine as positive > uncertain > negative. No Finding is positive when no label other than Support Devices is
positive or uncertain and no other abnormality (emphysema, fibrosis, hernia, scoliosis, ...) is asserted.

The rules were written from the radiology language of chest radiograph reports and checked on the radlabels dev
part (radbatch/evaluation/radlabels.py); never on any report outside synth_0401..synth_1000.
"""

from __future__ import annotations

import re

from .text import findings_text, sentences

# Display names in the abnormality head's table order (recipes/tasks/abnormality_detection.toml).
LABELS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
          "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
          "Pneumothorax", "Support Devices")
NONE_TEXT = "None"
RANK = {"positive": 3, "uncertain": 2, "negative": 1}

_CARD = r"(?:heart|cardiac(?: silhouette| shadow| size| contour)?|cardiac|heart size|heart shadow)"
MENTIONS: dict[str, tuple[str, ...]] = {
    "Atelectasis": (r"atelecta\w*", r"collapse[ds]?", r"volume loss"),
    "Cardiomegaly": (r"cardiomegaly", r"cardiac (?:silhouette |shadow )?enlargement", r"enlarge\w* (?:of the )?heart",
                     r"enlarged cardiac (?:silhouette|shadow|contour)s?", r"(?:large|big) heart",
                     r"heart(?: size)? (?:is |remains |appears |is again |is slightly |is mildly |is moderately "
                     r"|is markedly |is severely )*(?:\w+ )?(?:enlarged|large|increased|prominent)",
                     r"cardiac (?:silhouette|size|contour|shadow) (?:is |remains |appears )*(?:\w+ )?"
                     r"(?:enlarged|large|increased|prominent)",
                     r"cardiac and (?:\w+ )*mediastinal (?:enlargement|widening)",
                     r"(?:increased|enlarged|prominent) heart size"),
    "Consolidation": (r"consolidat\w*",),
    "Edema": (r"(?<!soft tissue )(?<!subcutaneous )(?<!wall )edema\w*", r"(?:vascular|venous|pulmonary|interstitial)"
              r" (?:congestion|engorgement)", r"congestive (?:heart )?failure", r"\bchf\b", r"fluid overload",
              r"cephalization", r"kerley b", r"vascular (?:re)?distribution", r"congestion"),
    "Enlarged Cardiomediastinum": (r"(?:widen\w*|enlarge\w*|prominen\w*) (?:of the )?(?:superior )?mediastin\w*",
                                   r"(?:mediastin\w*|cardiomediastinal)(?: silhouette| contours?| width)? "
                                   r"(?:is |are |remains? |appears? )*(?:\w+ )?(?:widened|enlarged|prominent)",
                                   r"mediastinal (?:widening|enlargement|shift)",
                                   r"cardiac and (?:\w+ )*mediastinal (?:enlargement|widening)"),
    "Fracture": (r"fractur\w*", r"\bfx\b"),
    "Lung Lesion": (r"nodul\w*", r"\bmass(?:es)?\b", r"(?<!skin )(?<!bone )lesions?", r"tumou?r", r"neoplas\w*",
                    r"carcinoma", r"malignan\w*", r"metasta\w*", r"cavitary", r"cavitation", r"granulomas?\b"),
    "Lung Opacity": (r"opaci\w*", r"infiltrat\w*", r"densit(?:y|ies)", r"haziness", r"hazy",
                     r"air ?space (?:disease|process|filling)", r"ground[- ]glass", r"interstitial (?:markings|"
                     r"thickening|opacit\w*|abnormalit\w*|process|disease|prominence|pattern)",
                     r"reticular\w*", r"parenchymal (?:abnormalit\w*|disease|process)"),
    "Pleural Effusion": (r"(?<!pericardial )(?<!joint )effusions?", r"pleural fluid", r"hydrothorax",
                         r"blunt\w* (?:of )?(?:the )?(?:\w+ )?costophrenic", r"costophrenic (?:angle )?blunting",
                         r"fluid (?:in|within) the (?:\w+ )?fissure"),
    "Pleural Other": (r"pleural (?:thickening|plaques?|scarring|calcification\w*|reaction|abnormalit\w*)",
                      r"fibrothorax", r"apical (?:pleural )?(?:cap|capping|thickening)", r"pleural-parenchymal scar"),
    "Pneumonia": (r"pneumonia\w*", r"\bpna\b", r"infecti\w*", r"aspiration"),
    "Pneumothorax": (r"pneumothora\w*", r"\bptx\b"),
    "Support Devices": (r"\b(?:et|ett|endotracheal|tracheostomy|trach|nasogastric|ng|og|orogastric|enteric|feeding|"
                        r"chest|dobhoff|dobbhoff|gastric|mediastinal|pleural|drainage|thoracostomy|g|j)[- ]tubes?\b",
                        r"\b(?:ett|dobhoff|dobbhoff)\b",
                        r"\b(?:central|venous|picc|ij|jugular|subclavian|arterial|swan[- ]ganz|midline|dialysis|"
                        r"hemodialysis|catheter) (?:venous )?(?:line|catheter)s?\b", r"\bpicc\b",
                        r"swan[- ]ganz", r"catheter\w*", r"pacemaker", r"pacer", r"\bicd\b", r"defibrillator",
                        r"(?:pacing|pacer|pacemaker|cardiac|epicardial|transvenous) (?:leads?|wires?)",
                        r"\bleads?\b", r"\bdrains?\b", r"\bstents?\b", r"port-?a-?cath", r"(?:chest|power) port",
                        r"\bport\b", r"tracheostomy", r"\bcannula\b", r"\bimpella\b", r"\biabp\b",
                        r"intra-?aortic balloon", r"\blvad\b", r"valve (?:replacement|prosthesis)",
                        r"prosthetic valve", r"\bhardware\b", r"\bclip\b(?= .*aneurysm)", r"tubes?(?= and lines)",
                        r"lines? and tubes?", r"tubes? and lines?", r"monitoring (?:leads|devices)",
                        r"support devices?"),
}

# Asserted (not negated) findings outside the 13 labels that make a report abnormal (No Finding not positive).
OTHER_ABNORMAL = (r"emphysem\w*", r"hyperinflat\w*", r"hyperexpan\w*", r"fibros\w*", r"fibrotic", r"scar\w*",
                  r"hernia", r"scoliosis", r"kyphosis", r"calcifi\w*", r"bronchiectasis", r"lymphadenopathy",
                  r"adenopathy", r"pneumoperitoneum", r"free (?:intraperitoneal )?air", r"eventration",
                  r"elevat\w* (?:of the )?(?:right |left )?hemidiaphragm", r"hemidiaphragm (?:is |remains )?elevat\w*",
                  r"tortuo\w*", r"copd", r"chronic lung disease", r"degenerative", r"osteopenia", r"deformit\w*",
                  r"thickening", r"bronchial wall", r"pulmonary (?:arterial )?hypertension", r"aneurysm",
                  r"subcutaneous (?:emphysema|air|gas)", r"pneumomediastinum", r"hiatal", r"sternotomy",
                  r"post-?surgical", r"postoperative", r"cabg", r"lobectomy", r"pneumonectomy", r"resection",
                  r"low lung volumes")

_NOT_PARTLY = r"(?<!nearly )(?<!almost )(?<!partially )(?<!largely )(?<!mostly )"  # "nearly resolved": still there
NEG_PRE = (r"\bno\b(?! (?:significant |appreciable |substantial |definite |major |interval |further )?"
           r"(?:change|increase|decrease|improvement|worsening|progression|difference|shift|interval change)\b)"
           r"(?! longer changed)",
           r"\bnot\b(?! (?:significantly |substantially |markedly )?(?:changed|increased|decreased|improved|worsened|"
           r"only|excluded|be excluded|ruled out|be ruled out))",
           r"\bwithout\b(?! (?:significant |interval |appreciable )?(?:change|increase|worsening|improvement))",
           r"\bfree of\b", r"\bnegative for\b", r"\babsence of\b", r"\bnor\b", r"\bneither\b", r"\bresolution of\b",
           _NOT_PARTLY + r"\bresolved\b", r"\bremoval of\b", r"\bremoved\b", r"\bclear of\b",
           r"\bnormal\b", r"\bunremarkable\b", r"\bwithin normal limits\b", r"\bnegative\b",
           r"\bclearing of\b", r"\bno longer\b", r"\binterval removal\b", r"\bwithdrawn\b", r"\bdisappear\w*")
NEG_POST = (r"^[^,]{0,40}?\b(?:has|have|had) (?:(?!nearly|almost|partially|largely|mostly)\w+ )?(?:resolved|"
            r"cleared|been removed|been withdrawn|disappeared)",
            r"^[^,]{0,40}?\b(?:is|are|was|were) (?:\w+ )?(?:resolved|absent|removed|gone|"
            r"no longer (?:seen|present|visible|visualized|identified|evident|appreciated)|"
            r"not (?:seen|present|visible|visualized|identified|evident|appreciated|demonstrated|detected|"
            r"enlarged|widened))", r"^[^,]{0,30}?\b" + _NOT_PARTLY + r"(?:resolved|removed)\b",
            r"^[^,]{0,40}?\b(?:is|are|remains?|appears?) (?:\w+ )?(?:normal|within normal limits|unremarkable|"
            r"top normal|upper limits? of normal|stable and normal)",
            r"^ ?(?:is|are) not\b(?! (?:only|(?:entirely |completely |definitely )?(?:excluded|ruled out)|"
            r"(?:significantly |substantially |markedly )?(?:changed|increased|decreased|improved|worsened)))")
# Uncertainty: explicit doubt about whether the finding is there. Hedged attributions that name the finding as
# the reader's leading explanation ("opacity likely reflecting atelectasis", "may represent edema", "consistent
# with", "concerning for") are read as assertions (positive): that is how the radlabels silver labels read them
# on the dev part, and how a registry reading the report would record them. LEAN_CUES lists them for reference.
UNC_PRE = (r"\bpossib\w*", r"\bquestion\w*", r"\bequivocal\b", r"\bcannot\b", r"\bcan not\b", r"\bcan't\b",
           r"\bnot (?:be )?(?:entirely |completely |definitely )?(?:excluded|ruled out)\b", r"\bmight\b",
           r"\bevaluat\w* (?:for|of)\b", r"\bassess\w* for\b", r"\bdifferential\b", r"\bversus\b", r"\bvs\.?\b",
           r"\br/o\b", r"\brule out\b", r"\bto exclude\b", r"\bnot entirely\b", r"\buncertain\b",
           r"\bindeterminate\b", r"\bunclear\b", r"\bdifficult to (?:exclude|assess|evaluate)\b", r"\bif any\b",
           r"\bwhether\b", r"\bsuspected\b", r"\bprobable\b")
LEAN_CUES = (r"\bmay\b", r"\bcould\b", r"\blikely\b", r"\bprobably\b", r"\bsuggest\w*", r"\bconsistent with\b",
             r"\bcompatible with\b", r"\bconcerning for\b", r"\bworrisome for\b", r"\bsuspicious for\b",
             r"\bfavou?r\w*", r"\bpresumed\b", r"\bthought to\b", r"\brepresent\w*", r"\bor\b")
UNC_POST = (r"^[^.]{0,60}?\b(?:cannot|can not|can't|could not|not) (?:be )?(?:entirely |completely |definitely )?"
            r"(?:excluded|ruled out)", r"^[^.]{0,40}?\?", r"^ ?(?:versus|vs\.?)\b",
            r"^[^.]{0,60}?\bis (?:a )?(?:possibilit\w*|consideration)", r"^[^.]{0,40}?\b(?:questioned|possible)\b",
            r"^[^.]{0,20}?\bif any\b", r"^[^.]{0,40}?\bwould be difficult to exclude")
# Where a cue's scope ends: a new clause (NegEx termination terms) or a new assertion after "and" / ",".
TERMINATORS = re.compile(r"\b(?:but|however|although|though|which|whereas|while|except|aside from|apart from|"
                         r"with the exception of|other than|otherwise|consistent with|concerning for|due to|"
                         r"secondary to|likely|probably|there (?:is|are|has|have)|the \w+ (?:is|are|has|have))\b|;|"
                         r"\b(?:and|,) (?=(?:the|there|a|an|new|increased|increasing|worsening|persistent|"
                         r"unchanged|stable|moderate|mild|small|large|severe|left|right|bilateral|\w+ (?:is|are|"
                         r"has|have))\b)")

_COMPILED = {label: [re.compile(p) for p in pats] for label, pats in MENTIONS.items()}
_OTHER = [re.compile(p) for p in OTHER_ABNORMAL]
_NEG_PRE = [re.compile(p) for p in NEG_PRE]
_NEG_POST = [re.compile(p) for p in NEG_POST]
_UNC_PRE = [re.compile(p) for p in UNC_PRE]
_UNC_POST = [re.compile(p) for p in UNC_POST]
# "no change in X", "stable X", "X is unchanged": X is still there.
_PSEUDO = re.compile(r"\bno (?:significant |appreciable |substantial |definite |major |further |interval )*(?:"
                     r"change|increase|decrease|improvement|worsening|progression|difference|shift)\b|"
                     r"\bwithout (?:significant |interval )*(?:change|increase|worsening)\b|\bnot (?:significantly )?"
                     r"(?:changed|increased|decreased|improved|worsened)\b|\bgram[- ]negative\b")
# Cues that only negate sizes/contours ("normal heart size") are read for the size labels alone.
_NORMAL_ONLY_FOR = {"Cardiomegaly", "Enlarged Cardiomediastinum"}
_NORMAL = re.compile(r"\b(?:normal|unremarkable|within normal limits|stable and normal|top normal)\b")


def _window(sentence: str, start: int, end: int) -> tuple[str, str]:
    """The clause text before and after a mention, cut at the nearest terminators."""
    before = sentence[:start]
    cuts = [m.end() for m in TERMINATORS.finditer(before)]
    if cuts:
        before = before[cuts[-1]:]
    after = sentence[end:]
    m = TERMINATORS.search(after)
    if m:
        after = after[:m.start()]
    return before, after


def _classify(label: str, sentence: str, start: int, end: int) -> str:
    before, after = _window(sentence, start, end)
    before_unc_scope = sentence[:start]  # uncertainty reaches across "likely" / "concerning for" (they are cues)
    for m in TERMINATORS.finditer(before_unc_scope):
        if m.group(0).strip() not in ("likely", "probably", "concerning for", "consistent with"):
            before_unc_scope = sentence[m.end():start]
    pseudo = _PSEUDO.search(before)
    neg_before = before[pseudo.end():] if pseudo else before
    negated = any(p.search(neg_before) for p in _NEG_PRE if p.pattern != r"\bnormal\b") or \
        any(p.search(after) for p in _NEG_POST)
    if re.search(r"\b(?:not|no longer)\b", sentence[start:end]):  # "heart is not enlarged" is one mention
        negated = True
    if label in _NORMAL_ONLY_FOR and (_NORMAL.search(neg_before) or _NORMAL.search(after[:40])):
        negated = True
    if pseudo and not negated:
        return "positive"
    if negated:
        return "negative"
    if any(p.search(before_unc_scope) for p in _UNC_PRE) or any(p.search(after) for p in _UNC_POST):
        return "uncertain"
    return "positive"


def _cardio_normal(sentence: str) -> list[str]:
    """Explicit normal-size statements negate the size labels ("heart size is normal", "normal cardiomediastinal
    silhouette", "cardiac and mediastinal contours are within normal limits")."""
    out = []
    if _NORMAL.search(sentence) and not re.search(r"\b(?:enlarge\w*|cardiomegaly|widen\w*)\b", sentence):
        if re.search(r"\b(?:heart|cardiac|cardiomediastinal)\b", sentence):
            out.append("Cardiomegaly")
        if re.search(r"\b(?:cardiomediastinal|mediastin\w*)\b", sentence):
            out.append("Enlarged Cardiomediastinum")
    return out


def label_report(report: str) -> dict[str, str | None]:
    """The 14 CheXpert values of one report: positive / negative / uncertain, None when not mentioned."""
    found: dict[str, str] = {}

    def put(label: str, value: str) -> None:
        if label not in found or RANK[value] > RANK[found[label]]:
            found[label] = value

    other_abnormal = False
    for s in sentences(findings_text(report)):
        taken: list[tuple[int, int]] = []
        for label, pats in _COMPILED.items():
            spans = []
            for p in pats:
                for m in p.finditer(s):
                    if not any(a <= m.start() < b for a, b in spans):
                        spans.append((m.start(), m.end()))
            for a, b in spans:
                put(label, _classify(label, s, a, b))
                taken.append((a, b))
        for label in _cardio_normal(s):
            put(label, "negative")
        for p in _OTHER:
            for m in p.finditer(s):
                if _classify("", s, m.start(), m.end()) != "negative":
                    other_abnormal = True
    # A consolidation is an airspace opacity by definition (CheXpert's hierarchy: Lung Opacity is its parent).
    if found.get("Consolidation") in ("positive", "uncertain") and found.get("Lung Opacity") is None:
        found["Lung Opacity"] = found["Consolidation"]
    out: dict[str, str | None] = {label: found.get(label) for label in LABELS}
    abnormal = other_abnormal or any(v in ("positive", "uncertain") for k, v in found.items()
                                     if k != "Support Devices")
    out["No Finding"] = None if abnormal else "positive"
    return out


def render(values: dict[str, str | None]) -> str:
    """The abnormality head's answer text: `<Label>: <value>` per mentioned label in table order, or None."""
    lines = [f"{label}: {values[label]}" for label in LABELS if values.get(label) is not None]
    return "\n".join(lines) if lines else NONE_TEXT


def answer(report: str) -> str:
    return render(label_report(report))
