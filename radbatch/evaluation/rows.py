"""One head's scored rows, and the status rules that decide which rows are scored and how.

Rules (docs/evaluation.md): a row is labelled for a head iff one of its gold columns is non-null.
not_applicable rows and rows whose gold is not a legal answer are excluded and counted. error, truncated,
a missing prediction row, a null or unknown status: scored with the prediction treated as missing (wrong).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

GOLD_PREFIX = "gold__"
ROW_KEY = "__gold_row"        # position of the row in the gold table: aligns runs in comparisons
PRESENT = "__prediction_row"  # True where the gold row found a prediction row
STATUSES = ("ok", "error", "truncated", "not_applicable")


@dataclass
class HeadRows:
    task: str
    keys: np.ndarray              # ROW_KEY per item
    status: np.ndarray            # ok / error / truncated / not_applicable / missing / other
    pred: dict[str, list]         # field -> predicted values (None where the status is not ok)
    gold: dict[str, list]         # field -> gold values

    @property
    def n(self) -> int:
        return len(self.keys)

    @property
    def ok(self) -> np.ndarray:
        return self.status == "ok"

    def subset(self, mask: np.ndarray) -> "HeadRows":
        return self.take(np.flatnonzero(mask))

    def take(self, idx: np.ndarray) -> "HeadRows":
        pick = lambda values: [values[i] for i in idx]  # noqa: E731
        return HeadRows(self.task, self.keys[idx], self.status[idx],
                        {k: pick(v) for k, v in self.pred.items()}, {k: pick(v) for k, v in self.gold.items()})

    def counts(self) -> dict[str, int]:
        return {name: int((self.status == name).sum()) for name in STATUSES + ("missing", "other")}


def gold_fields(columns: list[str], task: str, fields: tuple[str, ...]) -> list[str]:
    return [f for f in fields if f"{GOLD_PREFIX}{task}__{f}" in columns]


def select(frame: pl.DataFrame, task: str, fields: tuple[str, ...]) -> HeadRows:
    """The rows labelled for `task`, every status included."""
    present = gold_fields(frame.columns, task, fields)
    labelled = frame.filter(pl.any_horizontal([pl.col(f"{GOLD_PREFIX}{task}__{f}").is_not_null() for f in present]))
    status = _status(labelled, task)
    pred = {}
    for f in fields:
        col = f"{task}__{f}"
        values = labelled[col].to_list() if col in labelled.columns else [None] * labelled.height
        pred[f] = [v if s == "ok" else None for v, s in zip(values, status)]
    gold = {f: labelled[f"{GOLD_PREFIX}{task}__{f}"].to_list() if f in present else [None] * labelled.height
            for f in fields}
    return HeadRows(task, labelled[ROW_KEY].to_numpy(), status, pred, gold)


def _status(frame: pl.DataFrame, task: str) -> np.ndarray:
    """Per-row outcome: ok / error / truncated / not_applicable / missing / other."""
    column = f"{task}__status"
    if column in frame.columns:
        raw = frame[column].to_list()
    else:  # no status column (a hand-made file): a prediction row counts as ok, as documented
        raw = ["ok"] * frame.height
    out = [("missing" if not has_row or value is None else value if value in STATUSES else "other")
           for value, has_row in zip(raw, frame[PRESENT].to_list())]
    return np.array(out, dtype=object)
