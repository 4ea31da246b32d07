"""Where a head's confidence lives in an annotated file, and the (confidence, correct) items eval scores.

The column names are made by `confidence_column` only, so a rename in annotate is a one-line change here.
Closed-label heads (a grammar-constrained choice among a fixed set of answers) carry a confidence: the
probability of the chosen answer. A labels head (abnormality_detection) has one confidence per label column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from radbatch.heads.recipes import CONFIDENCE_KINDS

from .heads import scored_rows
from .rows import ROW_KEY
from .task_specs import TaskSpec, load_specs


def confidence_tasks() -> tuple[str, ...]:
    """The heads whose answer kind carries confidences (radbatch/engines/confidence.py: choice, rads, labels), in
    registry order."""
    return tuple(task for task, spec in load_specs().items() if spec.kind in CONFIDENCE_KINDS)



def __getattr__(name: str):
    """CONFIDENCE_TASKS, for older callers: confidence_tasks(), read from the registry when asked for."""
    if name == "CONFIDENCE_TASKS":
        return confidence_tasks()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def confidence_column(task: str, label: str | None = None) -> str:
    """`<task>__confidence`, or for abnormality_detection `abnormality_detection__<label slug>_confidence`."""
    return f"{task}__{label}_confidence" if label else f"{task}__confidence"


def confidence_columns(spec: TaskSpec) -> dict[str | None, str]:
    """label slug (None for single-answer heads) -> column name."""
    if spec.kind not in CONFIDENCE_KINDS:
        return {}
    if spec.labels:
        return {slug: confidence_column(spec.id, slug) for slug in spec.labels.values()}
    return {None: confidence_column(spec.id)}


def has_confidence(spec: TaskSpec, columns: list[str]) -> bool:
    return any(c in columns for c in confidence_columns(spec).values())


@dataclass
class ConfidenceItems:
    """One item per scored row (per scored (row, label) cell for abnormality_detection) with a confidence."""

    confidence: np.ndarray   # float in [0, 1]
    correct: np.ndarray      # bool: the chosen answer equals gold
    scored: int              # scored rows / cells, with or without a confidence
    without_confidence: int  # scored items lacking one (error, truncated, missing row, null): not in the figures


def _norm(value) -> str | None:
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def confidence_items(table: pl.DataFrame, spec: TaskSpec) -> ConfidenceItems:
    """The same rows the head's metrics score (labelled, applicable, legal gold), paired with confidences."""
    rows, _ = scored_rows(table, spec)
    position = {int(k): i for i, k in enumerate(table[ROW_KEY].to_list())}
    idx = np.array([position[int(k)] for k in rows.keys], dtype=int)
    conf, correct = [], []
    for label, column in confidence_columns(spec).items():
        values = (table[column].cast(pl.Float64).to_numpy()[idx] if column in table.columns
                  else np.full(rows.n, np.nan))
        fields = [label] if label else [f for f in spec.fields if any(g is not None for g in rows.gold[f])]
        right = np.ones(rows.n, bool)
        for f in fields:  # choice heads: a field without gold on a row (e.g. only the N stage) is not judged
            skip_null = spec.kind == "choice"
            right &= np.array([(skip_null and g is None) or _norm(p) == _norm(g)
                               for p, g in zip(rows.pred[f], rows.gold[f])], bool)
        values = np.where(rows.ok, values, np.nan)  # a confidence without an ok answer is not scored
        conf.append(values)
        correct.append(right)
    confidence = np.concatenate(conf) if conf else np.zeros(0)
    right = np.concatenate(correct) if correct else np.zeros(0, bool)
    keep = np.isfinite(confidence)
    return ConfidenceItems(np.clip(confidence[keep], 0.0, 1.0), right[keep], int(confidence.size),
                           int((~keep).sum()))
