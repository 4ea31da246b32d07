"""Per-label confidence: how sure the model was of the answer it gave, from the logits the engine already has.

Definition (both engines compute it the same way):

* At every generated token t (and at the end-of-generation token) the grammar allows a set A_t of tokens. The
  step probability is the softmax of the model's logits over A_t only, at the chosen token c_t:
      p_t = exp(l[c_t]) / sum over a in A_t of exp(l[a])
  A step where the grammar leaves one choice has p_t = 1, so only the deciding tokens count.
  The end-of-generation tokens count as one choice ("end here"): which of them ends the text decides nothing.
* A column's confidence is the product of p_t over the tokens that decided that column (`from_steps`):
    - choice heads (m_staging, n_staging, radiology_nli) and rads_assignment: every token of the answer plus the
      end token, i.e. the probability of the chosen answer's token path under the grammar-masked model. One
      column `<task>__confidence`; for n_staging it is the probability of the whole answer ("Positive, N2"),
      which covers `stage`; `node_involvement`'s own probability is at least as high.
    - abnormality_detection (`<Label>: <value>` lines): one column per label, `<task>__<label>_confidence`.
      A token belongs to the line that holds its last byte (a line's leading "\\n" belongs to it). A mentioned
      label's confidence is the product over its line's tokens: the name part says which label comes next,
      the value part its value. An unmentioned label (null) was decided where the model passed it over: the
      name part of the next mentioned line after it in table order, or the end token if no line follows
      (for the answer `None`: every token of `None` plus the end token).
  This is the probability of the path the greedy decoder took: a lower bound on the answer's probability
  (another tokenization of the same text, or for a null label another later label, is not added).
* Generative heads (impression_generation, radiology_qa, radiology_ner, temporal_comparison) get no
  confidence column: a token probability of free text measures fluency, not whether the content is right,
  and a column named confidence would be read as the latter.
* A member that is not a language model (the `rules` engine) sets `Completion.confidence` itself, keyed by
  the field names below (`constant` builds such a dict); a completion with neither steps nor confidence
  leaves the columns null.

The engines compute the step probabilities (radbatch/engines/confidence.py); this module turns them into
columns. It imports no engine.
"""

from __future__ import annotations

import math

from .answers import ChoiceAnswer, RadsAnswer, clean
from .answers_lists import LabelsAnswer


SUFFIX = "_confidence"   # abnormality_detection: `<task>__<label column>_confidence`


Step = tuple[int, int, float]   # (start byte, end byte) of the token in the output text, step probability


def fields(answer) -> list[str]:
    """The confidence fields an answer kind writes (empty for generative kinds)."""
    if isinstance(answer, (ChoiceAnswer, RadsAnswer)):
        return ["confidence"]
    if isinstance(answer, LabelsAnswer):
        return [col + SUFFIX for col in answer.columns()]
    return []


def constant(answer, value: float | None) -> dict[str, float | None]:
    """Every confidence field of an answer at one value (for members without logits, e.g. rules)."""
    return dict.fromkeys(fields(answer), value)


def from_steps(answer, text: str, steps: tuple[Step, ...]) -> dict[str, float]:
    """Field -> confidence for one parsed answer (see the module docstring for which tokens decide what)."""
    if isinstance(answer, (ChoiceAnswer, RadsAnswer)):
        return {"confidence": _product(p for _, _, p in steps)}
    if isinstance(answer, LabelsAnswer):
        return _labels(answer, text, steps)
    return {}


def _product(probs) -> float:
    return min(1.0, max(0.0, math.prod(probs)))


def _labels(answer: LabelsAnswer, text: str, steps: tuple[Step, ...]) -> dict[str, float]:
    data = text.encode("utf-8")
    order = [name for name, _ in answer.labels]
    if clean(text) == answer.none_text:
        whole = _product(p for _, _, p in steps)
        return {col + SUFFIX: whole for _, col in answer.labels}
    # line k: (label index, name part [a, b), value part [b, c)); the "\n" before a line belongs to it
    lines, pos = [], 0
    for k, line in enumerate(data.split(b"\n")):
        start = pos - 1 if k else 0
        name, _, _ = line.partition(b": ")
        b = pos + len(name) + 2
        lines.append((order.index(name.decode()), start, b, pos + len(line)))
        pos += len(line) + 1
    name_p = [1.0] * len(lines)
    value_p = [1.0] * len(lines)
    end_p = 1.0
    for start, end, p in steps:
        if end <= start:          # the end-of-generation token
            end_p *= p
            continue
        last = end - 1
        for k, (_, a, b, c) in enumerate(lines):
            if a <= last < b:
                name_p[k] *= p
                break
            if b <= last < c:
                value_p[k] *= p
                break
    out = {}
    for j, (_, col) in enumerate(answer.labels):
        mentioned = [k for k, line in enumerate(lines) if line[0] == j]
        if mentioned:
            k = mentioned[0]
            out[col + SUFFIX] = _product((name_p[k], value_p[k]))
        else:
            later = [k for k, line in enumerate(lines) if line[0] > j]
            out[col + SUFFIX] = _product((name_p[later[0]],)) if later else _product((end_p,))
    return out
