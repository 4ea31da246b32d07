"""Single-label classification figures (accuracy, macro-F1, majority baseline, confusion) and the
choice heads built on them (N staging, M staging, NLI, and any new head of answer kind "choice").

Labels are integer-coded against the recipe vocabulary. Gold and predicted strings match a vocabulary
entry ignoring case and surrounding spaces; anything else is INVALID, and a prediction that does not exist
(error, truncated, missing row) is MISSING. Both count as wrong and credit no class.
"""

from __future__ import annotations

import numpy as np

from .rows import HeadRows
from .statistics import FigureBlock, macro_f1, prf_columns, ratio
from .task_specs import TaskSpec

INVALID, MISSING = -1, -2


def encode(values: list, vocab: tuple[str, ...], ok: np.ndarray | None = None) -> np.ndarray:
    lookup = {v.strip().lower(): i for i, v in enumerate(vocab)}
    codes = np.array([lookup.get(v.strip().lower(), INVALID) if isinstance(v, str) else INVALID
                      for v in values], dtype=int)
    if ok is not None:
        codes[~ok] = MISSING
    return codes


def majority(gold: np.ndarray) -> int:
    """Most frequent gold code; ties go to the earlier vocabulary entry (np.argmax takes the first)."""
    return int(np.argmax(np.bincount(gold))) if gold.size else 0


def add_classification(block: FigureBlock, prefix: str, gold: np.ndarray, pred: np.ndarray, classes: int,
                       mask: np.ndarray | None = None, summary: bool = False, f1: bool = True) -> None:
    """accuracy (and macro-F1) over the items in `mask`, each beside the constant majority prediction."""
    mask = np.ones(block.n_items, bool) if mask is None else mask
    const = np.full_like(gold, majority(gold[mask]))
    m = mask[:, None]
    cols = block.add(np.hstack([(gold == pred)[:, None], m]) * m, np.hstack([(gold == const)[:, None], m]) * m)
    block.figure(f"{prefix}accuracy", cols, ratio, int(mask.sum()), summary=summary, baseline=True)
    if f1:
        cols = block.add(prf_columns(gold, pred, classes) * m, prf_columns(gold, const, classes) * m)
        block.figure(f"{prefix}macro_f1", cols, macro_f1(classes), int(mask.sum()), summary=summary,
                     baseline=True)


def confusion(gold: np.ndarray, pred: np.ndarray, names: list[str]) -> dict:
    """Counts, rows = gold, columns = prediction, over the classes that occur, plus invalid / no output."""
    used = sorted(set(gold.tolist()) | {p for p in pred.tolist() if p >= 0})
    cols = used + [c for c in (INVALID, MISSING) if (pred == c).any()]
    col_names = [names[c] if c >= 0 else ("(invalid)" if c == INVALID else "(no output)") for c in cols]
    matrix = [[int(((gold == g) & (pred == p)).sum()) for p in cols] for g in used]
    return {"gold": [names[g] for g in used], "predicted": col_names, "matrix": matrix}


def invalid_gold_choice(spec: TaskSpec, rows: HeadRows) -> np.ndarray:
    """A gold value outside the vocabulary (null is fine: that field is simply unlabelled)."""
    bad = np.zeros(rows.n, bool)
    for field, vocab in spec.choices.items():
        values = rows.gold[field]
        codes = encode(values, vocab)
        bad |= np.array([v is not None for v in values], bool) & (codes == INVALID)
    return bad


def score_choice(spec: TaskSpec, rows: HeadRows) -> FigureBlock:
    block = FigureBlock(rows.n)
    invalid = np.zeros(rows.n, bool)
    for field, vocab in spec.choices.items():
        labelled = np.array([v is not None for v in rows.gold[field]], bool)
        if not labelled.any():
            continue  # no gold for this field (e.g. only the N stage was labelled)
        gold = np.where(labelled, encode(rows.gold[field], vocab), 0)
        pred = encode(rows.pred[field], vocab, rows.ok)
        invalid |= labelled & (pred == INVALID)
        add_classification(block, f"{field}/", gold, pred, len(vocab), labelled,
                           summary=field == spec.primary_field)
        block.extras.setdefault("confusion", {})[field] = confusion(gold[labelled], pred[labelled], list(vocab))
    block.extras["invalid_predictions"] = int(invalid.sum())
    return block
