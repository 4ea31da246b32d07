"""The task registry: recipes/ loaded into frozen, typed objects, the one place that knows what a head is.

Everything else derives from it: task ids and their order (recipes/task_order.toml, then unlisted heads by id),
each head's answer kind and vocabularies (`TaskRecipe.answer`), output columns (`TaskRecipe.columns`), and the
primary metric `radbatch eval` reports for it (chosen by the answer's kind, `TaskRecipe.primary_metric`), so a
new head is one recipe file. Unknown keys are errors; every problem is reported at once.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from radbatch.errors import RecipeError

from .answers import ChoiceAnswer, RadsAnswer, TextAnswer
from .answers_lists import ChangesAnswer, EntitiesAnswer, LabelsAnswer
from .arrow_types import parse_type

ANSWER_KINDS: dict[str, Any] = {   # kind name -> answer class (each has build(spec, problems, where))
    "choice": ChoiceAnswer, "rads": RadsAnswer, "text": TextAnswer,
    "labels": LabelsAnswer, "entities": EntitiesAnswer, "changes": ChangesAnswer,
}
INPUT_FIELDS = ("report", "findings", "prior", "hypothesis", "question")
LAYOUTS = ("report_first", "task_tag_first")
_TASK_KEYS = {"id", "version", "description", "inputs", "max_tokens", "instruction", "answer", "columns"}
ORDER_FILE = "task_order.toml"
# The answer kinds whose heads write confidence columns (radbatch/engines/confidence.py: one deciding choice, a
# RADS category, a state per label); read by evaluation (calibration, thresholds) and recipes validate.
CONFIDENCE_KINDS = ("choice", "rads", "labels")
# The figure `radbatch eval` leads with for each answer kind (evaluation/heads.py scores each kind one way).
# A choice head's is the accuracy of its primary field ("stage/accuracy", "label/accuracy").
PRIMARY_METRIC = {
    "rads": "accuracy", "text": "rouge_l", "changes": "jaccard", "entities": "rouge_l",
    "labels": "per_label_accuracy", "choice": "{field}/accuracy",
}


def recipes_dir() -> Path:
    """recipes/ beside the package (editable install), or $RADBATCH_RECIPES."""
    env = os.environ.get("RADBATCH_RECIPES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "recipes"


@dataclass(frozen=True)
class TaskRecipe:
    id: str
    version: int
    description: str
    inputs: tuple[str, ...]
    max_tokens: int
    instruction: str
    answer: Any
    columns: tuple[tuple[str, pa.DataType], ...]
    sha256: str

    @property
    def kind(self) -> str:
        """The answer kind's name in the recipe (`[answer] kind`)."""
        return next(name for name, cls in ANSWER_KINDS.items() if isinstance(self.answer, cls))

    @property
    def fields(self) -> tuple[str, ...]:
        """Output fields in recipe order (columns `<task>__<field>`)."""
        return tuple(name for name, _ in self.columns)

    @property
    def primary_field(self) -> str | None:
        """A choice head's headline field: the one whose values tell the most options apart (n_staging: stage,
        4 values, over node_involvement, 2); ties go to the first column. None for the other kinds."""
        if not isinstance(self.answer, ChoiceAnswer):
            return None
        distinct = {f: len({dict(vals).get(f) for _, vals in self.answer.options}) for f in self.fields}
        return max(self.fields, key=lambda f: distinct[f])  # max keeps the first of equals

    @property
    def primary_metric(self) -> str:
        return PRIMARY_METRIC[self.kind].format(field=self.primary_field)


@dataclass(frozen=True)
class Profile:
    name: str
    layout: str
    system: str


@dataclass(frozen=True)
class Recipes:
    root: Path
    tasks: dict[str, TaskRecipe]
    profiles: dict[str, Profile]
    sha256: dict[str, str] = field(default_factory=dict)  # relative path -> sha256, for provenance

    @property
    def order(self) -> tuple[str, ...]:
        """Task ids in registry order (`tasks` is kept in it): output columns, `radbatch tasks` and eval follow it."""
        return tuple(self.tasks)

    def task(self, name: str) -> TaskRecipe:
        if name not in self.tasks:
            raise RecipeError([f"Unknown task {name!r}. Known: {', '.join(self.tasks)}"])
        return self.tasks[name]


def read_toml(path: Path, problems: list[str]) -> dict | None:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        problems.append(f"{path}: cannot read TOML: {exc}")
        return None


def unknown_keys(table: dict, allowed: set[str], where: str, problems: list[str]) -> None:
    for key in sorted(set(table) - allowed):
        problems.append(f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")


def _task(path: Path, data: dict, problems: list[str]) -> TaskRecipe | None:
    where = str(path)
    before = len(problems)
    unknown_keys(data, _TASK_KEYS, where, problems)
    for key in sorted(_TASK_KEYS - set(data)):
        problems.append(f"{where}: missing key {key!r}")
    if len(problems) > before:
        return None
    if data["id"] != path.stem:
        problems.append(f"{where}: id {data['id']!r} must match the file name {path.stem!r}")
    for name in data["inputs"]:
        if name not in INPUT_FIELDS:
            problems.append(f"{where}: unknown input {name!r} (known: {', '.join(INPUT_FIELDS)})")
    if not isinstance(data["max_tokens"], int) or data["max_tokens"] < 1:
        problems.append(f"{where}: max_tokens must be a positive integer")
    answer_spec = dict(data["answer"])
    kind = answer_spec.pop("kind", None)
    if kind not in ANSWER_KINDS:
        problems.append(f"{where}: answer.kind {kind!r} unknown (known: {', '.join(ANSWER_KINDS)})")
        return None
    answer = ANSWER_KINDS[kind].build(answer_spec, problems, where)
    columns = []
    for i, col in enumerate(data["columns"]):
        unknown_keys(col, {"name", "type"}, f"{where} columns[{i}]", problems)
        try:
            columns.append((col["name"], parse_type(col["type"])))
        except (KeyError, ValueError) as exc:
            problems.append(f"{where} columns[{i}]: {exc}")
    declared = sorted(name for name, _ in columns)
    if len(problems) == before and declared != answer.columns():
        problems.append(f"{where}: declared columns {declared} differ from what answer kind {kind!r} "
                        f"produces {answer.columns()}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return TaskRecipe(data["id"], data["version"], data["description"], tuple(data["inputs"]),
                      data["max_tokens"], data["instruction"], answer, tuple(columns), digest)


def _profiles(path: Path, problems: list[str]) -> dict[str, Profile]:
    data = read_toml(path, problems) or {}
    out = {}
    for name, table in data.items():
        where = f"{path} [{name}]"
        unknown_keys(table, {"layout", "system"}, where, problems)
        if table.get("layout") not in LAYOUTS:
            problems.append(f"{where}: layout must be one of {', '.join(LAYOUTS)}")
        out[name] = Profile(name, table.get("layout", ""), table.get("system", ""))
    return out


def _order(path: Path, task_ids: list[str], problems: list[str]) -> list[str]:
    """Task ids in registry order: those task_order.toml lists, in its order, then the others by id (so a new
    head needs only its recipe file and comes last)."""
    data = read_toml(path, problems)
    if data is None:
        return sorted(task_ids)
    unknown_keys(data, {"order"}, str(path), problems)
    listed = data.get("order")
    if not isinstance(listed, list) or not all(isinstance(t, str) for t in listed):
        problems.append(f"{path}: order must be a list of task ids")
        return sorted(task_ids)
    for t in sorted({t for t in listed if listed.count(t) > 1}):
        problems.append(f"{path}: order lists {t!r} more than once")
    for t in listed:
        if t not in task_ids:
            problems.append(f"{path}: order lists {t!r}, which has no recipe tasks/{t}.toml "
                            f"(known: {', '.join(sorted(task_ids))})")
    known = list(dict.fromkeys(t for t in listed if t in task_ids))
    return known + sorted(set(task_ids) - set(known))


def load_recipes(root: Path | None = None) -> Recipes:
    """Load and validate tasks, their order and profiles; raise RecipeError listing every problem."""
    root = Path(root or recipes_dir())
    problems: list[str] = []
    found = {}
    task_files = sorted((root / "tasks").glob("*.toml"))
    if not task_files:
        problems.append(f"{root / 'tasks'}: no task recipes found")
    for path in task_files:
        data = read_toml(path, problems)
        if data is not None and (recipe := _task(path, data, problems)):
            found[recipe.id] = recipe
    order = _order(root / ORDER_FILE, [p.stem for p in task_files], problems)
    tasks = {t: found[t] for t in order if t in found}
    profiles = _profiles(root / "profiles.toml", problems)
    if problems:
        raise RecipeError(problems)
    hashes = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in [root / "profiles.toml", *task_files]}
    return Recipes(root, tasks, profiles, hashes)
