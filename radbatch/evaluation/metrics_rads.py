"""RADS assignment: accuracy overall and per system, validity, and error severity on the recipe's scales.

A label is a (system, category) pair from the recipe's systems table, or "none" (no applicable RADS).
"None" is system "none" (or the recipe's none text, any case) with a null category, in predictions (that is how
the parser writes `No applicable RADS`) and in gold (where both null means unlabelled). A prediction with status
ok and both null (radbatch before system "none" existed) also counts as "none".
"""

from __future__ import annotations

import numpy as np

from .metrics_classification import INVALID, MISSING, add_classification, confusion
from .rows import HeadRows
from .statistics import FigureBlock, ratio
from .task_specs import TaskSpec

NONE = "none"


class RadsCodes:
    """Integer codes for the labels plus, per code, its system index and ordinal position."""

    def __init__(self, spec: TaskSpec):
        self.systems = list(spec.rads_systems)
        self.names = [NONE]
        self.system_of, self.rank_of = [-1], [-1]
        self._lookup: dict[tuple[str, str], int] = {}
        for s, (system, categories) in enumerate(spec.rads_systems.items()):
            for rank, category in enumerate(categories):
                self._lookup[(system.lower(), category.lower())] = len(self.names)
                self.names.append(f"{system} {category}")
                self.system_of.append(s)
                self.rank_of.append(rank)
        self.system_of, self.rank_of = np.array(self.system_of), np.array(self.rank_of)
        self._none_words = {NONE, spec.rads_none_text.lower()}

    def code(self, system, category, gold: bool) -> int:
        if isinstance(system, str) and system.strip().lower() in self._none_words and not category:
            return 0
        if not gold and system is None and category is None:
            return 0
        if isinstance(system, str) and isinstance(category, str):
            return self._lookup.get((system.strip().lower(), category.strip().lower()), INVALID)
        return INVALID

    def encode(self, rows: HeadRows, gold: bool) -> np.ndarray:
        values = rows.gold if gold else rows.pred
        codes = np.array([self.code(s, c, gold) for s, c in zip(values["system"], values["category"])], int)
        if not gold:
            codes[~rows.ok] = MISSING
        return codes


def invalid_gold_rads(spec: TaskSpec, rows: HeadRows) -> np.ndarray:
    return RadsCodes(spec).encode(rows, gold=True) == INVALID


def severity(codes: RadsCodes, gold: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Wrong answers split: overcall / undercall = same system, higher / lower on its ordinal scale;
    other = wrong system, none vs some, invalid or missing output."""
    wrong = gold != pred
    valid = pred >= 0
    same_system = valid & (codes.system_of[gold] == codes.system_of[np.where(valid, pred, 0)]) & (gold > 0)
    rank_g, rank_p = codes.rank_of[gold], codes.rank_of[np.where(valid, pred, 0)]
    over = wrong & same_system & (rank_p > rank_g)
    under = wrong & same_system & (rank_p < rank_g)
    return {"overcall": over, "undercall": under, "other_error": wrong & ~over & ~under}


def score_rads(spec: TaskSpec, rows: HeadRows) -> FigureBlock:
    codes = RadsCodes(spec)
    gold, pred = codes.encode(rows, gold=True), codes.encode(rows, gold=False)
    block = FigureBlock(rows.n)
    add_classification(block, "", gold, pred, len(codes.names), summary=True, f1=False)
    gold_sys = codes.system_of[gold]
    pred_sys = np.where(pred >= 0, codes.system_of[np.maximum(pred, 0)], -2)
    add_classification(block, "system_", gold_sys + 1, pred_sys + 1, len(codes.systems) + 1, summary=True, f1=False)
    ones = np.ones(rows.n)
    cols = block.add(np.column_stack([pred >= 0, ones]))
    block.figure("validity", cols, ratio, rows.n, summary=True)
    kinds = severity(codes, gold, pred)
    for name, hit in kinds.items():
        block.figure(f"{name}_rate", block.add(np.column_stack([hit, ones])), ratio, rows.n, summary=True)
    for s, system in [(-1, NONE)] + list(enumerate(codes.systems)):
        in_system = gold_sys == s
        if in_system.any():
            add_classification(block, f"system/{system}/", gold, pred, len(codes.names), in_system,
                               summary=True, f1=False)
    block.extras["severity"] = {name: int(hit.sum()) for name, hit in kinds.items()}
    block.extras["confusion"] = {"label": confusion(gold, pred, codes.names)}
    block.extras["invalid_predictions"] = int((rows.ok & (pred == INVALID)).sum())
    return block
