"""Temporal comparison: the paper's Jaccard and change-class F1.

Each report's answer becomes a set of items (change class, normalised entity); the cue is ignored because
its wording varies freely. Jaccard per report = |pred ∩ gold| / |pred ∪ gold| (two empty sets: 1, a
missing prediction: 0), averaged over reports. Change-class F1 splits the same item matching by the item's
class: tp = items of class c in both sets, fp = predicted only, fn = gold only; micro pools all classes
(predicted items of an unknown class count as fp), macro averages the classes that occur.
"""

from __future__ import annotations

import numpy as np

from .metrics_text import normalise_entity
from .rows import HeadRows
from .statistics import FigureBlock, f1, macro_f1, micro_f1, ratio
from .task_specs import TaskSpec

UNKNOWN = "?"


def items(spec: TaskSpec, value) -> set[tuple[str, str]]:
    """Class names are matched ignoring case, by value (`new`) or display name (`New Finding`)."""
    lookup = {v.lower(): v for v in spec.change_classes.values()}
    lookup |= {d.lower(): v for d, v in spec.change_classes.items()}
    return {(lookup.get((c.get("change") or "").strip().lower(), UNKNOWN), normalise_entity(c.get("entity") or ""))
            for c in value or []}


def invalid_gold_temporal(spec: TaskSpec, rows: HeadRows) -> np.ndarray:
    return np.array([not isinstance(v, list) or any(c == UNKNOWN for c, _ in items(spec, v))
                     for v in rows.gold["changes"]], bool)


def jaccard(pred: set | None, gold: set) -> float:
    if pred is None:
        return 0.0
    union = pred | gold
    return len(pred & gold) / len(union) if union else 1.0


def score_temporal(spec: TaskSpec, rows: HeadRows) -> FigureBlock:
    classes = list(spec.change_classes.values())
    k = len(classes) + 1  # the last group holds predicted items of an unknown class
    block = FigureBlock(rows.n)
    counts = np.zeros((rows.n, 3, k))
    scores = np.zeros(rows.n)
    invalid = 0
    for r, (p_raw, g_raw, ok) in enumerate(zip(rows.pred["changes"], rows.gold["changes"], rows.ok)):
        gold = items(spec, g_raw)
        pred = items(spec, p_raw) if ok else None
        scores[r] = jaccard(pred, gold)
        pred = pred or set()
        invalid += any(c == UNKNOWN for c, _ in pred)
        for g, cls in enumerate(classes + [UNKNOWN]):
            p_c, g_c = {i for i in pred if i[0] == cls}, {i for i in gold if i[0] == cls}
            counts[r, :, g] = len(p_c & g_c), len(p_c - g_c), len(g_c - p_c)
    block.figure("jaccard", block.add(np.column_stack([scores, np.ones(rows.n)])), ratio, rows.n, summary=True)
    cols = block.add(counts.reshape(rows.n, -1))
    block.figure("change_f1/micro", cols, micro_f1(k), rows.n, summary=True)
    known = np.concatenate([cols[part * k: part * k + k - 1] for part in range(3)])
    block.figure("change_f1/macro", known, macro_f1(k - 1), rows.n, summary=True)
    for g, cls in enumerate(classes):
        support = int(counts[:, 0, g].sum() + counts[:, 2, g].sum())
        block.figure(f"change_f1/{cls}", cols[[g, k + g, 2 * k + g]], f1, rows.n, support=support)
    block.extras["invalid_predictions"] = invalid
    return block
