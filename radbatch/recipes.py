"""Load recipes/ into frozen, typed objects. Unknown keys are errors; every problem is reported at once."""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from .answers import ChoiceAnswer, RadsAnswer, TextAnswer
from .answers_lists import ChangesAnswer, EntitiesAnswer, LabelsAnswer
from .errors import RecipeError
from .schema import parse_type

ANSWER_KINDS = {
    "choice": ChoiceAnswer, "rads": RadsAnswer, "text": TextAnswer,
    "labels": LabelsAnswer, "entities": EntitiesAnswer, "changes": ChangesAnswer,
}
INPUT_FIELDS = ("report", "findings", "prior", "hypothesis", "question")
LAYOUTS = ("report_first", "task_tag_first")
_TASK_KEYS = {"id", "version", "description", "inputs", "max_tokens", "instruction", "answer", "columns"}


def recipes_dir() -> Path:
    """recipes/ beside the package (editable install), or $RADBATCH_RECIPES."""
    env = os.environ.get("RADBATCH_RECIPES")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "recipes"


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


def load_recipes(root: Path | None = None) -> Recipes:
    """Load and validate tasks and profiles; raise RecipeError listing every problem."""
    root = Path(root or recipes_dir())
    problems: list[str] = []
    tasks = {}
    task_files = sorted((root / "tasks").glob("*.toml"))
    if not task_files:
        problems.append(f"{root / 'tasks'}: no task recipes found")
    for path in task_files:
        data = read_toml(path, problems)
        if data is not None and (recipe := _task(path, data, problems)):
            tasks[recipe.id] = recipe
    profiles = _profiles(root / "profiles.toml", problems)
    if problems:
        raise RecipeError(problems)
    hashes = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in [root / "profiles.toml", *task_files]}
    return Recipes(root, tasks, profiles, hashes)
