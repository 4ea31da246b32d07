"""How each answer kind is scored, and the rule that turns a joined table into one head's scored items.

The heads themselves come from the task registry (radbatch/heads/recipes.py via task_specs): a head is scored by the
functions of its answer kind and headlined by its recipe's primary metric, so a new head needs no code here.
"""

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
from .task_specs import TaskSpec, load_specs


@dataclass(frozen=True)
class Head:
    primary: str                                              # the paper's metric (TaskRecipe.primary_metric)
    invalid_gold: Callable[[TaskSpec, HeadRows], np.ndarray]  # rows whose gold is not a legal answer
    score: Callable[[TaskSpec, HeadRows], FigureBlock]


# answer kind (radbatch.heads.recipes.ANSWER_KINDS) -> (invalid gold, score)
SCORERS = {
    "rads": (invalid_gold_rads, score_rads),
    "text": (invalid_gold_text, score_text),
    "changes": (invalid_gold_temporal, score_temporal),
    "entities": (invalid_gold_ner, score_ner),
    "choice": (invalid_gold_choice, score_choice),
    "labels": (invalid_gold_chexpert, score_chexpert),
}


def heads() -> dict[str, Head]:
    """Every head of the task registry, in its order."""
    return {task: Head(spec.primary, *SCORERS[spec.kind]) for task, spec in load_specs().items()}


def head(task: str) -> Head:
    known = heads()
    if task not in known:
        raise EvalError(f"Unknown task {task!r}. Known: {', '.join(known)}")
    return known[task]


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
