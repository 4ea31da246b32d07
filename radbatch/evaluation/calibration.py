"""Calibration figures for confidence columns: ECE, reliability bins, risk-coverage, a precision threshold,
and per-head temperature scaling fitted on a dev archive.

Definitions (docs/evaluation.md, "Confidence and calibration"):
* ECE: 10 equal-width bins over [0, 1]; bin b holds the confidences in (b/10, (b+1)/10] (0 goes to the first
  bin); ECE = sum over bins of (items in bin / items) * |accuracy in bin - mean confidence in bin|.
* Risk-coverage: items sorted by confidence, highest first; at coverage c the most confident ceil(c * n)
  items are accepted and the figure is their accuracy. Ties are broken by file order.
* Threshold for a target precision: among the distinct confidence values t, the lowest t such that the items
  with confidence >= t are right at least `target` of the time; coverage = those items / all items.
* Temperature: only the chosen answer's probability p is stored, not the distribution over every answer, so
  the multi-class temperature of Guo et al. (2017) cannot be refitted. We fit a temperature T on the binary
  event "the chosen answer is right": p' = sigmoid(logit(p) / T), T minimising the negative log-likelihood
  of right / wrong on the dev items (a one-parameter Platt scaling without intercept). T > 1 softens
  over-confident scores; the ranking of items, hence risk-coverage, is unchanged.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EvalError

BINS = 10
COVERAGES = tuple(round(0.01 * i, 2) for i in range(1, 101))  # the risk-coverage points kept in metrics.json
EPS = 1e-6
CALIBRATION_SCHEMA = 1


def ece(confidence: np.ndarray, correct: np.ndarray) -> tuple[float, list[dict]]:
    """Expected calibration error and the per-bin figures behind it (the reliability diagram)."""
    n = confidence.size
    which = np.clip(np.ceil(confidence * BINS).astype(int) - 1, 0, BINS - 1)
    bins, total = [], 0.0
    for b in range(BINS):
        mask = which == b
        count = int(mask.sum())
        mean_conf = float(confidence[mask].mean()) if count else math.nan
        accuracy = float(correct[mask].mean()) if count else math.nan
        if count:
            total += count / n * abs(accuracy - mean_conf)
        bins.append({"low": b / BINS, "high": (b + 1) / BINS, "count": count, "confidence": mean_conf,
                     "accuracy": accuracy})
    return (total if n else math.nan), bins


def risk_coverage(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, accuracy of the accepted items) after accepting the k most confident items, k = 1..n."""
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    k = np.arange(1, confidence.size + 1)
    return k / max(confidence.size, 1), hits / k


def coverage_points(confidence: np.ndarray, correct: np.ndarray) -> list[dict]:
    if not confidence.size:
        return []
    _, accuracy = risk_coverage(confidence, correct)
    n = confidence.size
    return [{"coverage": c, "accepted": int(math.ceil(c * n - 1e-9)),
             "accuracy": float(accuracy[max(int(math.ceil(c * n - 1e-9)), 1) - 1])} for c in COVERAGES]


def threshold_for_precision(confidence: np.ndarray, correct: np.ndarray, target: float) -> dict:
    """The lowest confidence threshold whose accepted items reach `target` precision, and what it leaves."""
    out = {"target_precision": target, "status": "unreachable", "threshold": None, "coverage": 0.0,
           "accepted": 0, "precision": None, "items": int(confidence.size)}
    if not confidence.size:
        out["status"] = "no items"
        return out
    # accepting confidence >= t for each distinct t: sort descending and read the cumulative counts at the
    # last item of each run of equal values (one pass, so a million rows cost a sort)
    order = np.argsort(-confidence, kind="stable")
    sorted_conf = confidence[order]
    hits = np.cumsum(correct[order])
    last = np.flatnonzero(np.append(sorted_conf[1:] != sorted_conf[:-1], True))
    precision = hits[last] / (last + 1)
    reaching = np.flatnonzero(precision >= target - 1e-12)
    if reaching.size:
        j = last[reaching[-1]]  # the run with the lowest threshold among those that reach the target
        out.update(status="reached", threshold=float(sorted_conf[j]), coverage=float((j + 1) / confidence.size),
                   accepted=int(j + 1), precision=float(hits[j] / (j + 1)))
    return out


def apply_temperature(confidence: np.ndarray, temperature: float) -> np.ndarray:
    p = np.clip(confidence, EPS, 1 - EPS)
    return 1.0 / (1.0 + np.exp(-np.log(p / (1 - p)) / temperature))


def nll(confidence: np.ndarray, correct: np.ndarray) -> float:
    p = np.clip(confidence, EPS, 1 - EPS)
    return float(-np.mean(np.where(correct, np.log(p), np.log(1 - p)))) if p.size else math.nan


def fit_temperature(confidence: np.ndarray, correct: np.ndarray) -> float:
    """T in [0.05, 20] minimising the binary NLL: a log-spaced grid, then a finer grid around the best point
    (deterministic, no optimiser dependency; the NLL is smooth and unimodal enough in log T for this)."""
    if not confidence.size:
        raise EvalError("no items with a confidence to fit a temperature on.")
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 241))
    for _ in range(3):
        losses = [nll(apply_temperature(confidence, t), correct) for t in grid]
        best = int(np.argmin(losses))
        low, high = grid[max(best - 1, 0)], grid[min(best + 1, grid.size - 1)]
        grid = np.exp(np.linspace(np.log(low), np.log(high), 41))
    return float(grid[int(np.argmin([nll(apply_temperature(confidence, t), correct) for t in grid]))])


def summary(confidence: np.ndarray, correct: np.ndarray, target: float | None) -> dict:
    value, bins = ece(confidence, correct)
    out = {"items": int(confidence.size), "accuracy": float(correct.mean()) if correct.size else math.nan,
           "mean_confidence": float(confidence.mean()) if confidence.size else math.nan, "ece": value,
           "nll": nll(confidence, correct), "reliability": bins, "risk_coverage": coverage_points(confidence, correct)}
    if target is not None:
        out["threshold"] = threshold_for_precision(confidence, correct, target)
    return out


# --- the calibration file -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Temperature:
    temperature: float
    items: int
    nll_before: float
    nll_after: float


HEADER = """# Per-head temperatures for radbatch confidence columns: p' = sigmoid(logit(p) / temperature).
# Written by `radbatch calibrate DEV.parquet -o FILE`; read by `radbatch eval --calibration FILE` and
# `radbatch review --calibration FILE`. See docs/evaluation.md ("Confidence and calibration").
"""


def write_calibration(path: Path, temperatures: dict[str, Temperature], fitted_on: str) -> None:
    lines = [HEADER, f"schema = {CALIBRATION_SCHEMA}", f"fitted_on = {_toml_str(fitted_on)}",
             'method = "binary-logit temperature"', ""]
    for task, t in temperatures.items():
        lines += [f"[heads.{task}]", f"temperature = {t.temperature:.6g}", f"items = {t.items}",
                  f"nll_before = {t.nll_before:.6g}", f"nll_after = {t.nll_after:.6g}", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_calibration(path: Path, tasks: tuple[str, ...]) -> dict[str, float]:
    """Strict: unknown keys, unknown heads and non-positive temperatures are all reported together."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise EvalError(f"calibration file '{path}' not found. Write one with `radbatch calibrate`.") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise EvalError(f"cannot read calibration file '{path}': {exc}") from exc
    problems = [f"unknown key '{k}' (allowed: schema, fitted_on, method, heads)" for k in data
                if k not in ("schema", "fitted_on", "method", "heads")]
    if data.get("schema") != CALIBRATION_SCHEMA:
        problems.append(f"schema must be {CALIBRATION_SCHEMA}, got {data.get('schema')!r}")
    if data.get("method", "binary-logit temperature") != "binary-logit temperature":
        problems.append(f"method must be 'binary-logit temperature', got {data.get('method')!r}")
    heads = data.get("heads", {})
    if not isinstance(heads, dict) or not heads:
        problems.append("no [heads.<task>] tables")
        heads = {}
    out = {}
    for task, table in heads.items():
        if task not in tasks:
            problems.append(f"heads.{task}: not a head with confidences (known: {', '.join(tasks)})")
            continue
        if not isinstance(table, dict):
            problems.append(f"heads.{task}: must be a table")
            continue
        problems += [f"heads.{task}: unknown key '{k}' (allowed: temperature, items, nll_before, nll_after)"
                     for k in table if k not in ("temperature", "items", "nll_before", "nll_after")]
        t = table.get("temperature")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            problems.append(f"heads.{task}.temperature must be a positive number, got {t!r}")
        else:
            out[task] = float(t)
    if problems:
        raise EvalError(f"invalid calibration file '{path}':\n" + "\n".join(f"  - {p}" for p in problems))
    return out
