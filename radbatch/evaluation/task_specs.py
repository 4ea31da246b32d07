"""What evaluation needs from the task registry (radbatch/heads/recipes.py): output fields and answer vocabularies.

Derived from the strict recipe loader, never re-read from the TOML: a recipe problem stops eval with every
problem listed, and a new head's recipe is all eval needs. Vocabularies are kept in recipe order: for RADS that
order is the per-system ordinal scale used for overcall / undercall.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pyarrow as pa

from radbatch.errors import RecipeError
from radbatch.heads.answers import ChoiceAnswer, RadsAnswer
from radbatch.heads.answers_lists import ChangesAnswer, EntitiesAnswer, LabelsAnswer
from radbatch.heads.recipes import TaskRecipe, load_recipes, recipes_dir

from .errors import EvalError


@dataclass(frozen=True)
class TaskSpec:
    id: str
    kind: str                                     # the recipe's answer kind
    fields: tuple[str, ...]                       # output columns, without the `<task>__` prefix
    types: dict[str, pa.DataType]                 # field -> Arrow type (the recipe's [[columns]])
    choices: dict[str, tuple[str, ...]]           # choice heads: field -> allowed values, recipe order
    rads_systems: dict[str, tuple[str, ...]]      # rads: system -> categories in ordinal order
    rads_none_text: str
    labels: dict[str, str]                        # labels heads: display name -> column slug
    label_values: tuple[str, ...]                 # labels heads: allowed cell values
    entity_labels: tuple[str, ...]                # NER labels
    change_classes: dict[str, str]                # temporal: display -> class value
    primary: str = ""                             # the headline metric (TaskRecipe.primary_metric)
    primary_field: str | None = None              # choice heads: the field of the headline accuracy


def task_ids() -> tuple[str, ...]:
    """Every head, in registry order (recipes/task_order.toml, then the others by id)."""
    return tuple(load_specs())


def load_specs(root: Path | None = None) -> dict[str, TaskSpec]:
    """Task id -> spec, in registry order, from $RADBATCH_RECIPES or recipes/ beside the package."""
    return _load(Path(root or recipes_dir()).resolve())


@lru_cache(maxsize=8)
def _load(root: Path) -> dict[str, TaskSpec]:
    try:
        recipes = load_recipes(root)
    except RecipeError as exc:
        raise EvalError(f"{exc} Fix the recipes (`radbatch recipes validate` checks them), or set "
                        "RADBATCH_RECIPES to the folder holding tasks/*.toml.") from None
    return {task: spec_of(recipe) for task, recipe in recipes.tasks.items()}


def spec_of(recipe: TaskRecipe) -> TaskSpec:
    answer = recipe.answer
    choices: dict[str, list[str]] = {}
    if isinstance(answer, ChoiceAnswer):
        for field in recipe.fields:  # values in option order: the order eval's confusion matrices use
            choices[field] = list(dict.fromkeys(dict(vals)[field] for _, vals in answer.options if field in dict(vals)))
    return TaskSpec(
        id=recipe.id,
        kind=recipe.kind,
        fields=recipe.fields,
        types=dict(recipe.columns),
        choices={k: tuple(v) for k, v in choices.items()},
        rads_systems={k: tuple(v) for k, v in answer.systems} if isinstance(answer, RadsAnswer) else {},
        rads_none_text=answer.none_text if isinstance(answer, RadsAnswer) else "",
        labels=dict(answer.labels) if isinstance(answer, LabelsAnswer) else {},
        label_values=tuple(answer.values) if isinstance(answer, LabelsAnswer) else (),
        entity_labels=tuple(answer.labels) if isinstance(answer, EntitiesAnswer) else (),
        change_classes=dict(answer.classes) if isinstance(answer, ChangesAnswer) else {},
        primary=recipe.primary_metric,
        primary_field=recipe.primary_field,
    )
