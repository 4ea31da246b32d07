"""Figures as reductions of per-item component sums, so one resampling serves every figure of a head.

Each head turns its scored rows (items) into a block of numeric columns, one row per item: e.g. `correct` and
`1` for accuracy, or per-class tp / fp / fn for F1. A figure is a reducer applied to the column sums. A
bootstrap replicate then only needs the weighted sums `W @ block`, which is one matrix product for all
figures (see bootstrap.py), and two runs scored on the same items share W for a paired comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

Reducer = Callable[[np.ndarray], np.ndarray]  # column sums (..., k) -> figure value (...)


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def ratio(s: np.ndarray) -> np.ndarray:
    """Columns (numerator, denominator): a mean or a proportion."""
    return _div(s[..., 0], s[..., 1])


def _prf(s: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = s.reshape(s.shape[:-1] + (3, groups))  # columns laid out as tp_1..tp_g, fp_1..fp_g, fn_1..fn_g
    return s[..., 0, :], s[..., 1, :], s[..., 2, :]


def f1(s: np.ndarray) -> np.ndarray:
    tp, fp, fn = (x[..., 0] for x in _prf(s, 1))
    return _div(2 * tp, 2 * tp + fp + fn)


def precision(s: np.ndarray) -> np.ndarray:
    tp, fp, _ = (x[..., 0] for x in _prf(s, 1))
    return _div(tp, tp + fp)


def recall(s: np.ndarray) -> np.ndarray:
    tp, _, fn = (x[..., 0] for x in _prf(s, 1))
    return _div(tp, tp + fn)


def micro_f1(groups: int) -> Reducer:
    def reduce(s: np.ndarray) -> np.ndarray:
        tp, fp, fn = (x.sum(-1) for x in _prf(s, groups))
        return _div(2 * tp, 2 * tp + fp + fn)
    return reduce


def macro_f1(groups: int) -> Reducer:
    """Mean F1 over the groups (classes or labels) that occur in gold or prediction, as scikit-learn
    does with its default labels: a group with tp + fp + fn = 0 has no F1 and is left out."""
    def reduce(s: np.ndarray) -> np.ndarray:
        tp, fp, fn = _prf(s, groups)
        scores = _div(2 * tp, 2 * tp + fp + fn)
        present = ~np.isnan(scores)
        return _div(np.where(present, scores, 0).sum(-1), present.sum(-1).astype(float))
    return reduce


def weighted_f1(groups: int) -> Reducer:
    """F1 per group weighted by its gold support (tp + fn), as scikit-learn's average='weighted'."""
    def reduce(s: np.ndarray) -> np.ndarray:
        tp, fp, fn = _prf(s, groups)
        scores = np.nan_to_num(_div(2 * tp, 2 * tp + fp + fn))
        support = tp + fn
        return _div((scores * support).sum(-1), support.sum(-1))
    return reduce


def prf_columns(gold: np.ndarray, pred: np.ndarray, classes: int) -> np.ndarray:
    """Per-item tp / fp / fn one-hot columns for integer-coded labels (pred < 0: no valid prediction,
    which costs the gold class a false negative and credits no class)."""
    onehot_g = gold[:, None] == np.arange(classes)[None, :]
    onehot_p = pred[:, None] == np.arange(classes)[None, :]
    return np.hstack([onehot_g & onehot_p, onehot_p & ~onehot_g, onehot_g & ~onehot_p]).astype(float)


@dataclass(frozen=True)
class FigureSpec:
    key: str
    cols: np.ndarray
    reduce: Reducer
    n: int                      # items behind the figure
    summary: bool = False       # shown in the terminal table
    baseline: bool = False      # the baseline block holds a majority-class prediction for these columns
    support: int | None = None  # gold positives behind an F1, where that is more telling than n


@dataclass
class FigureBlock:
    """The component columns of one head's items plus the figures defined on them."""

    n_items: int
    figures: list[FigureSpec] = field(default_factory=list)
    extras: dict = field(default_factory=dict)  # confusion matrices, error counts: for reports, not resampled
    _cols: list[np.ndarray] = field(default_factory=list)
    _base: list[np.ndarray] = field(default_factory=list)
    _width: int = 0

    def add(self, columns: np.ndarray, baseline: np.ndarray | None = None) -> np.ndarray:
        """Append columns (n_items x k) and the same columns for the majority-class prediction."""
        columns = np.asarray(columns, dtype=float)
        columns = columns[:, None] if columns.ndim == 1 else columns.reshape(self.n_items, columns.shape[-1])
        base = np.full_like(columns, np.nan) if baseline is None else np.asarray(baseline, float).reshape(columns.shape)
        self._cols.append(columns)
        self._base.append(base)
        idx = np.arange(self._width, self._width + columns.shape[1])
        self._width += columns.shape[1]
        return idx

    def figure(self, key: str, cols: np.ndarray, reduce: Reducer, n: int, **kwargs) -> None:
        self.figures.append(FigureSpec(key, np.asarray(cols), reduce, int(n), **kwargs))

    def matrix(self) -> np.ndarray:
        return np.hstack(self._cols) if self._cols else np.zeros((self.n_items, 0))

    def baseline_matrix(self) -> np.ndarray:
        return np.hstack(self._base) if self._base else np.zeros((self.n_items, 0))
