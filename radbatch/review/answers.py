"""What a reviewer can answer for a head: one or more choice controls, each mapping a choice to gold fields.

Built from the task registry (radbatch/heads/recipes.py; the same answers the grammar allows): a choice head offers its options' text
("Positive, N1"), RADS offers "<SYSTEM> <category>" and its none text, abnormality_detection offers one
control per CheXpert label with positive / negative / uncertain / not_mentioned.
"""

from __future__ import annotations

from dataclasses import dataclass

from radbatch.errors import InputError
from radbatch.evaluation.confidence import confidence_column, confidence_tasks
from radbatch.heads.answers import RadsAnswer
from radbatch.heads.answers_lists import LabelsAnswer

NOT_MENTIONED = "not_mentioned"


@dataclass(frozen=True)
class Control:
    name: str                                     # CSV column suffix, Label Studio control name
    title: str
    choices: dict[str, dict[str, str | None]]     # choice text -> {output field: value}
    confidence: str                               # the confidence column behind this control

    def lookup(self, text: str) -> str | None:
        """The canonical choice for a typed answer (case and surrounding spaces ignored)."""
        wanted = " ".join(text.split()).lower()
        return next((c for c in self.choices if c.lower() == wanted), None)

    def answer_of(self, values: dict[str, object]) -> str | None:
        """The choice whose field values match a row's outputs (None when the output matches none)."""
        norm = {k: v.strip().lower() if isinstance(v, str) else v for k, v in values.items()}
        for text, fields in self.choices.items():
            if all(norm.get(k) == (v.lower() if isinstance(v, str) else v) for k, v in fields.items()):
                return text
        return None


@dataclass(frozen=True)
class ReviewHead:
    task: str
    fields: tuple[str, ...]
    controls: tuple[Control, ...]

    @property
    def multi(self) -> bool:
        """One control per label (abnormality_detection): a row's confidence is its least sure label's."""
        return len(self.controls) > 1


def review_head(task: str) -> ReviewHead:
    from radbatch.errors import RecipeError
    from radbatch.heads.recipes import load_recipes

    try:
        recipe = load_recipes().tasks.get(task)
    except RecipeError as exc:
        raise InputError(f"{exc} Fix the recipes, or set RADBATCH_RECIPES to the recipes folder.") from None
    reviewable = confidence_tasks()
    if recipe is None or task not in reviewable:
        raise InputError(f"Unknown or unreviewable head {task!r} for --head. Heads with confidences: "
                         f"{', '.join(reviewable)}")
    answer, title = recipe.answer, recipe.description
    if isinstance(answer, LabelsAnswer):
        values = {v: v for v in answer.values} | {NOT_MENTIONED: None}
        controls = tuple(Control(slug, name, {v: {slug: val} for v, val in values.items()},
                                 confidence_column(task, slug)) for name, slug in answer.labels)
    elif isinstance(answer, RadsAnswer):
        choices = {f"{system} {cat}": {"system": system, "category": cat}
                   for system, cats in answer.systems for cat in cats}
        choices[answer.none_text] = {"system": "none", "category": None}
        controls = (Control("answer", title, choices, confidence_column(task)),)
    else:  # choice
        choices = {text: dict(values) for text, values in answer.options}
        controls = (Control("answer", title, choices, confidence_column(task)),)
    return ReviewHead(task, recipe.fields, controls)
