"""Seeded, vectorised percentile bootstrap over items, single-run and paired.

A replicate draws n items with replacement; instead of materialising the resample we count how often each
item was drawn (a B x n weight matrix W) so every figure's replicate value is reduce(W @ components).
W is built in chunks to bound memory (about 32 MB) on large archives. Each head gets its own generator,
seeded from (seed, task name), so its intervals do not change when other heads are added or removed.
"""

from __future__ import annotations

import zlib

import numpy as np

from .result import DiffResult, FigureResult, Settings
from .statistics import FigureBlock

_CELLS_PER_CHUNK = 4_000_000


def head_rng(settings: Settings, task: str) -> np.random.Generator:
    return np.random.default_rng([settings.seed, zlib.crc32(task.encode())])


def replicate_sums(matrices: list[np.ndarray], resamples: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Column sums of each matrix under the same `resamples` bootstrap draws of its rows (B x k each)."""
    n = matrices[0].shape[0]
    widths = [m.shape[1] for m in matrices]
    stacked = np.hstack(matrices)
    if n == 0:
        return [np.full((resamples, w), np.nan) for w in widths]
    chunk = max(1, min(resamples, _CELLS_PER_CHUNK // n))
    parts = []
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        weights = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(float)
        parts.append(weights @ stacked)
    sums = np.vstack(parts)
    return np.split(sums, np.cumsum(widths)[:-1], axis=1)


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def estimate(block: FigureBlock, settings: Settings, task: str) -> dict[str, FigureResult]:
    matrix, base = block.matrix(), block.baseline_matrix()
    totals, base_totals = matrix.sum(0), base.sum(0)
    (reps,) = replicate_sums([matrix], settings.resamples, head_rng(settings, task))
    out = {}
    for fig in block.figures:
        low, high = _interval(fig.reduce(reps[:, fig.cols]), settings.confidence)
        baseline = float(fig.reduce(base_totals[fig.cols])) if fig.baseline else None
        out[fig.key] = FigureResult(float(fig.reduce(totals[fig.cols])), low, high, fig.n, baseline,
                                    fig.support, fig.summary)
    return out


def paired_difference(block_a: FigureBlock, block_b: FigureBlock, settings: Settings,
                      task: str) -> dict[str, DiffResult]:
    """b - a for every figure both blocks define, items aligned row for row.

    The p-value is two-sided: twice the share of replicates whose difference falls on the other side of
    zero (add-one smoothed, capped at 1), the usual paired bootstrap test for system comparisons.
    """
    mat_a, mat_b = block_a.matrix(), block_b.matrix()
    reps_a, reps_b = replicate_sums([mat_a, mat_b], settings.resamples, head_rng(settings, task))
    tot_a, tot_b = mat_a.sum(0), mat_b.sum(0)
    figs_b = {fig.key: fig for fig in block_b.figures}
    out = {}
    for fa in block_a.figures:
        fb = figs_b.get(fa.key)
        if fb is None:
            continue
        a, b = float(fa.reduce(tot_a[fa.cols])), float(fb.reduce(tot_b[fb.cols]))
        diffs = fb.reduce(reps_b[:, fb.cols]) - fa.reduce(reps_a[:, fa.cols])
        low, high = _interval(diffs, settings.confidence)
        out[fa.key] = DiffResult(a, b, b - a, low, high, _p_value(diffs), fa.n, fa.summary)
    return out


def _p_value(diffs: np.ndarray) -> float:
    diffs = diffs[~np.isnan(diffs)]
    if diffs.size == 0:
        return float("nan")
    below = (np.sum(diffs <= 0) + 1) / (diffs.size + 1)
    above = (np.sum(diffs >= 0) + 1) / (diffs.size + 1)
    return float(min(1.0, 2 * min(below, above)))
