"""PNG charts for the HTML report, drawn with matplotlib's object API (no pyplot global state).

Imported only by report_html, so `import radbatch.evaluation` never loads matplotlib.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .result import DiffResult, FigureResult

RUN_COLOURS = {"run": "#4C72B0", "a": "#4C72B0", "b": "#DD8452"}


def _finite(x: float | None) -> float:
    return float(x) if x is not None and np.isfinite(x) else np.nan


def bars(path: Path, title: str, runs: dict[str, dict[str, FigureResult]], keys: list[str]) -> None:
    """Grouped bars (one group per figure, one bar per run) with 95% intervals and baseline ticks."""
    fig = Figure(figsize=(max(6.0, 0.55 * len(keys) * len(runs) + 2), 4.2), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(keys))
    width = 0.8 / max(1, len(runs))
    for i, (label, figures) in enumerate(runs.items()):
        vals = np.array([_finite(figures[k].value) if k in figures else np.nan for k in keys])
        low = np.array([_finite(figures[k].ci_low) if k in figures else np.nan for k in keys])
        high = np.array([_finite(figures[k].ci_high) if k in figures else np.nan for k in keys])
        err = np.nan_to_num(np.vstack([vals - low, high - vals]).clip(min=0))
        pos = x + (i - (len(runs) - 1) / 2) * width
        ax.bar(pos, np.nan_to_num(vals), width, yerr=err, capsize=3, label=label,
               color=RUN_COLOURS.get(label, "#55A868"))
        base = [_finite(figures[k].baseline) if k in figures and figures[k].baseline is not None else np.nan
                for k in keys]
        ax.scatter(pos, base, marker="_", s=250, color="black", zorder=3,
                   label="majority baseline" if i == 0 and not np.all(np.isnan(base)) else None)
    ax.set_xticks(x, keys, rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("value (95% CI)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.savefig(path, dpi=100)


def confusion_grid(path: Path, title: str, matrices: dict[str, dict]) -> None:
    """One heat map per confusion matrix (rows = gold, columns = prediction), cells showing counts,
    colour = share of the gold row, so rare classes stay readable."""
    n = len(matrices)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    size = max(3.2, 0.45 * max(len(m["predicted"]) for m in matrices.values()) + 1.5)
    fig = Figure(figsize=(size * cols, size * rows * 0.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, (name, m) in zip(axes, matrices.items()):
        counts = np.array(m["matrix"], float).reshape(len(m["gold"]), len(m["predicted"]))
        share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        ax.imshow(share if counts.size else np.zeros((1, 1)), cmap="Blues", vmin=0, vmax=1, aspect="auto")
        for (r, c), v in np.ndenumerate(counts):
            if v == 0:
                continue  # blank cells read faster, and text is what makes big matrices slow to draw
            ax.text(c, r, f"{int(v)}", ha="center", va="center", fontsize=7,
                    color="white" if share[r, c] > 0.6 else "black")
        ax.set_xticks(range(len(m["predicted"])), m["predicted"], rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(m["gold"])), m["gold"], fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("gold", fontsize=7)
    for ax in axes[n:]:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=100)


def differences(path: Path, title: str, diffs: dict[str, DiffResult]) -> None:
    """b - a per figure with its paired 95% interval; a bar whose interval misses zero is significant."""
    keys = list(diffs)
    fig = Figure(figsize=(7.0, max(2.5, 0.4 * len(keys) + 1.2)), layout="constrained")
    ax = fig.subplots()
    vals = np.array([_finite(diffs[k].diff) for k in keys])
    low = np.array([_finite(diffs[k].ci_low) for k in keys])
    high = np.array([_finite(diffs[k].ci_high) for k in keys])
    significant = (low > 0) | (high < 0)
    y = np.arange(len(keys))
    ax.barh(y, np.nan_to_num(vals), xerr=np.nan_to_num(np.vstack([vals - low, high - vals]).clip(min=0)),
            capsize=3, color=np.where(significant, "#55A868", "#BBBBBB"))
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, keys, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("b - a (95% paired bootstrap CI); green = interval excludes 0")
    ax.set_title(title, fontsize=10)
    fig.savefig(path, dpi=100)


CURVE_COLOURS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52"]


def reliability(path: Path, title: str, curves: dict[str, list[dict]]) -> None:
    """Accuracy against mean confidence per bin (calibration.ece bins); the diagonal is perfect calibration.
    Marker area grows with the bin's item count."""
    fig = Figure(figsize=(4.6, 4.4), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1, label="perfect calibration")
    for colour, (label, bins) in zip(CURVE_COLOURS, curves.items()):
        used = [b for b in bins if b["count"]]
        total = max(sum(b["count"] for b in used), 1)
        x = [b["confidence"] for b in used]
        y = [b["accuracy"] for b in used]
        ax.plot(x, y, marker="o", color=colour, label=label, linewidth=1.2, markersize=3)
        ax.scatter(x, y, s=[20 + 300 * b["count"] / total for b in used], color=colour, alpha=0.35)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("mean confidence in bin (10 equal-width bins)")
    ax.set_ylabel("accuracy in bin")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.savefig(path, dpi=100)


def risk_coverage(path: Path, title: str, curves: dict[str, list[dict]], threshold: dict | None = None) -> None:
    """Accuracy of the most confident x% of items against x; with a target precision, its line and the
    coverage the chosen threshold leaves."""
    fig = Figure(figsize=(5.6, 4.0), layout="constrained")
    ax = fig.subplots()
    for colour, (label, points) in zip(CURVE_COLOURS, curves.items()):
        ax.step([100 * p["coverage"] for p in points], [p["accuracy"] for p in points], where="post",
                color=colour, label=label, linewidth=1.5)
    if threshold is not None:
        target = threshold["target_precision"]
        ax.axhline(target, color="#C44E52", linestyle=":", linewidth=1, label=f"target precision {target:g}")
        if threshold["status"] == "reached":
            cov = 100 * threshold["coverage"]
            ax.axvline(cov, color="#C44E52", linewidth=1,
                       label=f"confidence >= {threshold['threshold']:.3f}: {cov:.0f}% accepted")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("coverage: most confident x% of rows accepted")
    ax.set_ylabel("accuracy of the accepted rows")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.savefig(path, dpi=100)
