"""The bootstrap: weighted sums equal explicit resampling, seeded and deterministic, fast, and paired."""

from __future__ import annotations

import time

import numpy as np
import pytest

from radbatch.evaluation.bootstrap import estimate, paired_difference, replicate_sums
from radbatch.evaluation.result import Settings
from radbatch.evaluation.statistics import FigureBlock, macro_f1, prf_columns, ratio


def accuracy_block(correct: np.ndarray) -> FigureBlock:
    block = FigureBlock(len(correct))
    block.figure("accuracy", block.add(np.column_stack([correct, np.ones(len(correct))])), ratio, len(correct))
    return block


def test_weighted_sums_equal_explicit_resampling():
    x = np.arange(12, dtype=float).reshape(6, 2)
    (sums,) = replicate_sums([x], 5, np.random.default_rng(7))
    draws = np.random.default_rng(7).integers(0, 6, size=(5, 6))  # the same draws, made explicit
    assert np.allclose(sums, np.stack([x[d].sum(0) for d in draws]))


def test_intervals_are_deterministic_and_cover_the_value():
    correct = np.random.default_rng(1).random(200) < 0.7
    a = estimate(accuracy_block(correct), Settings(), "m_staging")["accuracy"]
    b = estimate(accuracy_block(correct), Settings(), "m_staging")["accuracy"]
    assert a == b
    assert a.ci_low < a.value < a.ci_high and a.n == 200
    # a binomial proportion's 95% interval is about +-1.96 sqrt(p(1-p)/n) = +-0.064 here
    assert a.ci_high - a.ci_low == pytest.approx(2 * 1.96 * np.sqrt(0.7 * 0.3 / 200), rel=0.2)
    other_seed = estimate(accuracy_block(correct), Settings(seed=1), "m_staging")["accuracy"]
    assert other_seed.value == a.value and (other_seed.ci_low, other_seed.ci_high) != (a.ci_low, a.ci_high)


def test_no_items_gives_nan_not_an_error():
    fig = estimate(accuracy_block(np.zeros(0, bool)), Settings(resamples=50), "x")["accuracy"]
    assert np.isnan(fig.value) and np.isnan(fig.ci_low) and fig.n == 0


def test_large_archive_is_fast():
    rng = np.random.default_rng(0)
    n, classes = 20_000, 4
    gold, pred = rng.integers(0, classes, n), rng.integers(0, classes, n)
    block = FigureBlock(n)
    block.figure("macro_f1", block.add(prf_columns(gold, pred, classes)), macro_f1(classes), n)
    start = time.perf_counter()
    estimate(block, Settings(resamples=1000), "x")
    assert time.perf_counter() - start < 10  # about 1 s on 2 cores (50,000 items: about 2.5 s)


def test_paired_difference_identical_runs_and_clear_improvement():
    rng = np.random.default_rng(3)
    a = rng.random(300) < 0.5
    same = paired_difference(accuracy_block(a), accuracy_block(a), Settings(), "x")["accuracy"]
    assert same.diff == 0 and same.ci_low == same.ci_high == 0 and same.p_value == 1.0
    b = a | (rng.random(300) < 0.6)  # b right wherever a is, and on about 60% of the rest
    better = paired_difference(accuracy_block(a), accuracy_block(b), Settings(), "x")["accuracy"]
    assert better.diff > 0.2 and better.ci_low > 0 and better.p_value < 0.01
    worse = paired_difference(accuracy_block(b), accuracy_block(a), Settings(), "x")["accuracy"]
    assert worse.diff == pytest.approx(-better.diff) and worse.ci_high < 0
