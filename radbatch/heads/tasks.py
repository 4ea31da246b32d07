"""Task heads: a recipe (prompt, answer schema, version) plus render() and parse().

A head instance is one output slot: a task, and for a head with a `question` input (radiology_qa) with repeated
--question one instance per question (columns get a suffix `_1`, `_2`, ...). Columns: `<task>__<field><suffix>`, then the closed-label heads'
confidence columns (`<task>__confidence`, for abnormality detection `<task>__<label>_confidence`; float32 in
[0, 1], radbatch/heads/confidence.py), then `<task>__status<suffix>`, `<task>__error<suffix>`, `<task>__model<suffix>`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from . import confidence

from .models import ModelSpec
from .prompts import Prompt, render
from .recipes import Profile, TaskRecipe

STATUSES = ("ok", "error", "not_applicable", "truncated")
CONFIDENCE_TYPE = pa.float32()   # 7 significant digits: more than the probabilities carry (radbatch/heads/confidence.py)


@dataclass(frozen=True)
class RowInputs:
    """The texts one report offers to the heads (derived from its columns and the sectionizer)."""

    report: str | None
    findings: str | None
    impression: str | None
    prior: str | None
    hypothesis: str | None
    question: str | None
    has_comparison: bool


@dataclass(frozen=True)
class HeadInstance:
    recipe: TaskRecipe
    suffix: str = ""
    question: str | None = None  # fixed --question text, else the question column is used

    @property
    def key(self) -> str:
        return self.recipe.id + self.suffix

    def col(self, field: str) -> str:
        return f"{self.recipe.id}__{field}{self.suffix}"

    def output_fields(self) -> list[pa.Field]:
        fields = [pa.field(self.col(name), dtype) for name, dtype in self.recipe.columns]
        fields += [pa.field(self.col(name), CONFIDENCE_TYPE) for name in self.confidence_fields()]
        return fields + [pa.field(self.col(x), pa.string()) for x in ("status", "error", "model")]

    def confidence_fields(self) -> list[str]:
        """This head's confidence fields (none for generative heads)."""
        return confidence.fields(self.recipe.answer)

    def confidences(self, text: str, steps: tuple | None, given: dict | None) -> dict:
        """Confidence columns of one parsed answer: a member's own (`given`, e.g. rules), else from the
        engine's steps, else none (the columns stay null)."""
        if given is not None:
            values = given
        elif steps is not None:
            values = confidence.from_steps(self.recipe.answer, text, steps)
        else:
            return {}
        unknown = sorted(set(values) - set(self.confidence_fields()))
        if unknown:
            raise ValueError(f"confidence for unknown field(s) {', '.join(unknown)} of {self.recipe.id}. "
                             f"Known: {', '.join(self.confidence_fields()) or 'none'}")
        return {self.col(k): v for k, v in values.items()}

    def fields_for(self, row: RowInputs) -> tuple[list[tuple[str, str]] | None, str]:
        """The (input, text) pairs for this head, or None and the reason it does not apply."""
        out = []
        for name in self.recipe.inputs:
            text = self.question if (name == "question" and self.question) else getattr(row, name)
            if text and text.strip():
                out.append((name, text))
            elif name == "prior" and row.has_comparison:
                continue  # the report's own comparison statements stand in for the prior
            else:
                return None, _MISSING[name]
        return out, ""

    def prompt(self, row: RowInputs, profile: Profile, model: ModelSpec) -> tuple[Prompt | None, str]:
        fields, reason = self.fields_for(row)
        if fields is None:
            return None, reason
        return render(profile.layout, profile.system, model.chat_template, self.recipe.id,
                      self.recipe.instruction, fields, model.thinking), ""

    def grammar(self) -> str:
        return self.recipe.answer.grammar()

    def parse(self, text: str) -> dict:
        """Raises RowError when the output does not fit the schema."""
        return {self.col(k): v for k, v in self.recipe.answer.parse(text).items()}

    def render_answer(self, values: dict) -> str:
        return self.recipe.answer.render(values)


_MISSING = {
    "report": "empty report text",
    "findings": "no findings section (see the sectionizer rules, or pass --findings-column)",
    "prior": "no prior report and no comparison statement in the report",
    "hypothesis": "no impression to use as hypothesis (pass --hypothesis-column)",
    "question": "no question (pass --question-column or --question)",
}


def head_instances(tasks: list[TaskRecipe], questions: tuple[str, ...]) -> list[HeadInstance]:
    out = []
    for recipe in tasks:
        if "question" in recipe.inputs and questions:
            out += [HeadInstance(recipe, f"_{i}", q) for i, q in enumerate(questions, 1)]
        else:
            out.append(HeadInstance(recipe))
    return out
