"""What a reviewer can answer for a head: one or more choice controls, each mapping a choice to gold fields.

Built from the task recipes (the same answers the grammar allows): a choice head offers its options' text
("Positive, N1"), RADS offers "<SYSTEM> <category>" and its none text, abnormality_detection offers one
control per CheXpert label with positive / negative / uncertain / not_mentioned.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

from radbatch.errors import InputError
from radbatch.evaluation.confidence import CONFIDENCE_TASKS, confidence_column
from radbatch.evaluation.task_specs import recipes_dir

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
    if task not in CONFIDENCE_TASKS:
        raise InputError(f"Unknown or unreviewable head {task!r} for --head. Heads with confidences: "
                         f"{', '.join(CONFIDENCE_TASKS)}")
    path = recipes_dir() / "tasks" / f"{task}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"cannot read task recipe {path}: {exc}. Set RADBATCH_RECIPES to the recipes folder.") from exc
    answer = data["answer"]
    fields = tuple(c["name"] for c in data.get("columns", []))
    if answer["kind"] == "labels":
        values = {v: v for v in answer["values"]} | {NOT_MENTIONED: None}
        controls = tuple(Control(slug, name, {v: {slug: val} for v, val in values.items()},
                                 confidence_column(task, slug)) for name, slug in answer["labels"].items())
    elif answer["kind"] == "rads":
        choices = {f"{system} {cat}": {"system": system, "category": cat}
                   for system, cats in answer["systems"].items() for cat in cats}
        choices[answer["none_text"]] = {"system": "none", "category": None}
        controls = (Control("answer", data.get("description", task), choices, confidence_column(task)),)
    else:  # choice
        choices = {o["text"]: dict(o["values"]) for o in answer["options"]}
        controls = (Control("answer", data.get("description", task), choices, confidence_column(task)),)
    return ReviewHead(task, fields, controls)
