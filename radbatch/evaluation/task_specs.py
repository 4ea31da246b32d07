"""What evaluation needs from the task recipes: output fields and answer vocabularies.

Read with tomllib straight from recipes/tasks/ so that `radbatch eval` depends only on the recipe files
(the shared recipes loader may replace this later). Vocabularies are kept in recipe order: for RADS that
order is the per-system ordinal scale used for overcall / undercall.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import EvalError

TASK_IDS = (
    "rads_assignment", "impression_generation", "temporal_comparison", "radiology_ner", "n_staging",
    "m_staging", "radiology_nli", "abnormality_detection", "radiology_qa",
)


@dataclass(frozen=True)
class TaskSpec:
    id: str
    kind: str                                     # the recipe's answer kind
    fields: tuple[str, ...]                       # output columns, without the `<task>__` prefix
    types: dict[str, str]                         # field -> Arrow type as written in the recipe
    choices: dict[str, tuple[str, ...]]           # choice heads: field -> allowed values, recipe order
    rads_systems: dict[str, tuple[str, ...]]      # rads: system -> categories in ordinal order
    rads_none_text: str
    labels: dict[str, str]                        # abnormality: display name -> column slug
    label_values: tuple[str, ...]                 # abnormality: allowed cell values
    entity_labels: tuple[str, ...]                # NER labels
    change_classes: dict[str, str]                # temporal: display -> class value


def recipes_dir() -> Path:
    """Same rule as radbatch.recipes: $RADBATCH_RECIPES, else recipes/ beside the package."""
    env = os.environ.get("RADBATCH_RECIPES")
    return Path(env) if env else Path(__file__).resolve().parent.parent.parent / "recipes"


@lru_cache(maxsize=8)
def load_specs(root: Path | None = None) -> dict[str, TaskSpec]:
    tasks_dir = (root or recipes_dir()) / "tasks"
    specs = {}
    for task in TASK_IDS:
        path = tasks_dir / f"{task}.toml"
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise EvalError(f"cannot read task recipe {path}: {exc}. "
                            "Set RADBATCH_RECIPES to the folder holding tasks/*.toml.") from exc
        specs[task] = _spec(task, data)
    return specs


def _spec(task: str, data: dict) -> TaskSpec:
    answer = data.get("answer", {})
    choices: dict[str, list[str]] = {}
    for option in answer.get("options", []):
        for field, value in option.get("values", {}).items():
            if value not in choices.setdefault(field, []):
                choices[field].append(value)
    return TaskSpec(
        id=task,
        kind=answer.get("kind", ""),
        fields=tuple(col["name"] for col in data.get("columns", [])),
        types={col["name"]: col.get("type", "string") for col in data.get("columns", [])},
        choices={k: tuple(v) for k, v in choices.items()},
        rads_systems={k: tuple(v) for k, v in answer.get("systems", {}).items()},
        rads_none_text=answer.get("none_text", ""),
        labels=dict(answer.get("labels", {})) if answer.get("kind") == "labels" else {},
        label_values=tuple(answer.get("values", ())),
        entity_labels=tuple(answer.get("labels", ())) if answer.get("kind") == "entities" else (),
        change_classes=dict(answer.get("classes", {})),
    )
