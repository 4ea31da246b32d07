"""Plain result objects, and their metrics.json form (stable keys; NaN written as null)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Settings:
    resamples: int = 1000
    seed: int = 0
    confidence: float = 0.95


@dataclass(frozen=True)
class FigureResult:
    value: float
    ci_low: float
    ci_high: float
    n: int
    baseline: float | None = None
    support: int | None = None
    summary: bool = False


@dataclass(frozen=True)
class DiffResult:
    a: float
    b: float
    diff: float          # b - a
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    summary: bool = False


@dataclass
class HeadResult:
    task: str
    primary: str                                  # key of the paper's metric in `metrics`
    counts: dict[str, int]
    metrics: dict[str, FigureResult] = field(default_factory=dict)
    extras: dict = field(default_factory=dict)   # confusion matrices, error severity counts
    calibration: dict = field(default_factory=dict)  # heads with confidence columns: calibration.summary() + counts
    rates: dict = field(default_factory=dict)    # truncation / invalid_output / other_error: {rate, count, n}


@dataclass
class JoinReport:
    method: str                  # "inline", "source_file+source_row" or "id:<column>"
    prediction_file: str
    gold_file: str
    prediction_rows: int
    gold_rows: int               # rows with gold for at least one head
    matched: int                 # gold rows with a prediction row
    missing_predictions: int     # gold rows with no prediction row: scored as wrong
    predictions_without_gold: int  # prediction rows with no gold at all: not scored
    duplicate_ids: int = 0       # informational when the join does not use the id column
    notes: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    label: str                   # "a" / "b" in comparisons, "run" otherwise
    join: JoinReport
    heads: dict[str, HeadResult]
    skipped: dict[str, str] = field(default_factory=dict)  # task -> why it was not evaluated


@dataclass
class EvalResult:
    settings: Settings
    runs: list[RunResult]
    comparison: dict[str, dict[str, DiffResult]] | None = None  # task -> metric key -> b - a

    def to_json(self) -> dict:
        return _clean({
            "schema_version": SCHEMA_VERSION,
            "bootstrap": asdict(self.settings) | {"method": "percentile", "paired_for_comparison": True},
            "runs": [asdict(run) for run in self.runs],
            "comparison": None if self.comparison is None else {
                task: {key: asdict(d) for key, d in diffs.items()} for task, diffs in self.comparison.items()},
        })

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _clean(obj):
    """NaN/inf -> None and numpy scalars -> Python, so metrics.json is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
