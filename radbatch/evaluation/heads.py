"""The registry of scorable heads, and the rule that turns a joined table into one head's scored items."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import polars as pl

from .errors import EvalError
from .metrics_chexpert import invalid_gold_chexpert, score_chexpert
from .metrics_classification import invalid_gold_choice, score_choice
from .metrics_ner import invalid_gold_ner, score_ner
from .metrics_rads import invalid_gold_rads, score_rads
from .metrics_temporal import invalid_gold_temporal, score_temporal
from .metrics_text import invalid_gold_text, score_text
from .rows import HeadRows, select
from .statistics import FigureBlock
from .task_specs import TaskSpec


@dataclass(frozen=True)
class Head:
    primary: str                                              # the paper's metric
    invalid_gold: Callable[[TaskSpec, HeadRows], np.ndarray]  # rows whose gold is not a legal answer
    score: Callable[[TaskSpec, HeadRows], FigureBlock]


HEADS = {
    "rads_assignment": Head("accuracy", invalid_gold_rads, score_rads),
    "impression_generation": Head("rouge_l", invalid_gold_text, score_text),
    "temporal_comparison": Head("jaccard", invalid_gold_temporal, score_temporal),
    "radiology_ner": Head("rouge_l", invalid_gold_ner, score_ner),
    "n_staging": Head("stage/accuracy", invalid_gold_choice, score_choice),
    "m_staging": Head("stage/accuracy", invalid_gold_choice, score_choice),
    "radiology_nli": Head("label/accuracy", invalid_gold_choice, score_choice),
    "abnormality_detection": Head("per_label_accuracy", invalid_gold_chexpert, score_chexpert),
    "radiology_qa": Head("rouge_l", invalid_gold_text, score_text),
}


def head(task: str) -> Head:
    if task not in HEADS:
        raise EvalError(f"Unknown task {task!r}. Known: {', '.join(HEADS)}")
    return HEADS[task]


def scored_rows(frame: pl.DataFrame, spec: TaskSpec) -> tuple[HeadRows, dict[str, int]]:
    """Labelled rows minus not_applicable and invalid-gold rows, with the counts behind that."""
    rows = select(frame, spec.id, spec.fields)
    counts = {"labelled": rows.n, "not_applicable": int((rows.status == "not_applicable").sum())}
    rows = rows.subset(rows.status != "not_applicable")
    bad = head(spec.id).invalid_gold(spec, rows) if rows.n else np.zeros(0, bool)
    counts["invalid_gold"] = int(bad.sum())
    rows = rows.subset(~bad)
    counts["scored"] = rows.n
    status = rows.counts()
    counts.update({k: status[k] for k in ("ok", "error", "truncated", "missing")})
    counts["other_status"] = status["other"]
    return rows, counts
