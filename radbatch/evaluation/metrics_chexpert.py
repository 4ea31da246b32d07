"""Abnormality detection: the paper's per-label accuracy and CheXbert-style F1 per label and class.

Every labelled report has a gold value for all 14 CheXpert labels: positive, negative, uncertain, or
not mentioned (null). A cell is one (report, label). For each class c and label L, F1 treats c as the
positive class (one vs rest) over the reports; averages over labels are micro (pooled tp/fp/fn), macro
(mean over labels where c occurs in gold or prediction) and weighted (by gold support), over all 14
labels and over the 5 CheXpert competition labels.
"""

from __future__ import annotations

import numpy as np

from .metrics_classification import INVALID, MISSING, confusion, encode, majority
from .rows import HeadRows
from .statistics import FigureBlock, f1, macro_f1, micro_f1, ratio, weighted_f1
from .task_specs import TaskSpec

NOT_MENTIONED = "not_mentioned"
COMPETITION = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")


def classes(spec: TaskSpec) -> list[str]:
    return list(spec.label_values) + [NOT_MENTIONED]


def cell_codes(spec: TaskSpec, values: list, ok: np.ndarray | None) -> np.ndarray:
    """Null = not mentioned (the last class); strings matched to the recipe values."""
    codes = encode(values, spec.label_values)
    codes[np.array([v is None for v in values], bool)] = len(spec.label_values)
    if ok is not None:
        codes[~ok] = MISSING
    return codes


def invalid_gold_chexpert(spec: TaskSpec, rows: HeadRows) -> np.ndarray:
    bad = np.zeros(rows.n, bool)
    for slug in spec.labels.values():
        bad |= cell_codes(spec, rows.gold[slug], None) == INVALID
    return bad


def score_chexpert(spec: TaskSpec, rows: HeadRows) -> FigureBlock:
    slugs = list(spec.labels.values())
    names = classes(spec)
    gold = np.column_stack([cell_codes(spec, rows.gold[s], None) for s in slugs]).astype(int)
    pred = np.column_stack([cell_codes(spec, rows.pred[s], rows.ok) for s in slugs]).astype(int)
    const = np.array([majority(gold[:, j]) for j in range(len(slugs))])[None, :].repeat(rows.n, 0)
    block = FigureBlock(rows.n)
    _accuracy(block, slugs, gold, pred, const)
    competition = ([slugs.index(spec.labels[name]) for name in COMPETITION]
                   if all(name in spec.labels for name in COMPETITION) else None)  # another labels head: none
    for c, name in enumerate(names):
        _class_f1(block, slugs, name, c, competition, gold, pred, const)
    block.extras["confusion"] = {s: confusion(gold[:, j], pred[:, j], names) for j, s in enumerate(slugs)}
    bad = rows.ok & (pred == INVALID).any(axis=1)
    block.extras["invalid_predictions"] = int(bad.sum())
    block.extras["invalid_cells"] = int((pred == INVALID).sum())
    return block


def _accuracy(block: FigureBlock, slugs: list[str], gold, pred, const) -> None:
    ones = np.ones((block.n_items, 1))
    cols = block.add(np.hstack([(gold == pred).mean(1, keepdims=True), ones]),
                     np.hstack([(gold == const).mean(1, keepdims=True), ones]))
    block.figure("per_label_accuracy", cols, ratio, block.n_items, summary=True, baseline=True)
    correct = block.add(gold == pred, gold == const)
    count = block.add(ones, ones)
    for j, slug in enumerate(slugs):
        block.figure(f"accuracy/{slug}", np.array([correct[j], count[0]]), ratio, block.n_items, baseline=True)


def _class_f1(block: FigureBlock, slugs, name: str, c: int, competition: list[int] | None, gold, pred,
              const) -> None:
    """tp / fp / fn of class c for each label, laid out tp_1..tp_14, fp_1..fp_14, fn_1..fn_14."""
    is_g, is_p, is_b = gold == c, pred == c, const == c
    cols = block.add(np.hstack([is_g & is_p, is_p & ~is_g, is_g & ~is_p]),
                     np.hstack([is_g & is_b, is_b & ~is_g, is_g & ~is_b]))
    k = len(slugs)
    for j, slug in enumerate(slugs):
        block.figure(f"f1/{name}/{slug}", cols[[j, k + j, 2 * k + j]], f1, block.n_items,
                     baseline=True, support=int(is_g[:, j].sum()))
    subsets = [(f"all_{k}", list(range(k)))] + ([("competition_5", competition)] if competition else [])
    for subset, idx in subsets:
        sub = np.concatenate([cols[[part * k + j for j in idx]] for part in range(3)])
        support = int(is_g[:, idx].sum())
        for average, reducer in (("micro", micro_f1), ("macro", macro_f1), ("weighted", weighted_f1)):
            summary = subset.startswith("all_") and average == "weighted"
            block.figure(f"f1/{name}/{average}/{subset}", sub, reducer(len(idx)), block.n_items,
                         baseline=True, support=support, summary=summary)

