"""Task -> model routing from recipes/routing.toml; unknown names raise and list the known ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from radbatch.errors import RecipeError

from .recipes import read_toml, unknown_keys

STATUSES = ("provisional", "measured")


@dataclass(frozen=True)
class Routing:
    status: str
    routes: dict[str, str]
    scores: dict[str, dict] = field(default_factory=dict)
    note: str = ""
    version: int | None = None     # the shipped default's version (routing.toml `version`), recorded by runs
    source: str = "default"        # default (recipes/routing.toml) | file (--routing-file) | model (--model)

    def model_for(self, task: str) -> str:
        if task not in self.routes:
            raise RecipeError([f"No route for task {task!r}. Routed tasks: {', '.join(self.routes)}"])
        return self.routes[task]


def load_routing(path: Path, tasks: set[str], models: set[str]) -> Routing:
    problems: list[str] = []
    data = read_toml(path, problems) or {}
    unknown_keys(data, {"status", "version", "routes", "scores", "note"}, str(path), problems)
    if "version" in data and (not isinstance(data["version"], int) or isinstance(data["version"], bool)):
        problems.append(f"{path}: version must be an integer (the routing's version, raised when it changes)")
    if data.get("status") not in STATUSES:
        problems.append(f"{path}: status must be one of {', '.join(STATUSES)}")
    routes = data.get("routes") or {}
    for task, model in routes.items():
        if task not in tasks:
            problems.append(f"{path}: routes names unknown task {task!r}. Known: {', '.join(sorted(tasks))}")
        if model not in models:
            problems.append(f"{path}: route {task} -> unknown model {model!r}. Known: {', '.join(sorted(models))}")
    for task in sorted(tasks - set(routes)):
        problems.append(f"{path}: no route for task {task!r}")
    for task, score in (data.get("scores") or {}).items():
        unknown_keys(score, {"metric", "model", "dev_score", "runner_up", "runner_up_score", "n"},
                     f"{path} [scores.{task}]", problems)
    if problems:
        raise RecipeError(problems)
    return Routing(data["status"], dict(routes), dict(data.get("scores") or {}), data.get("note", ""),
                   data.get("version"))


def single_model(model: str, tasks: set[str]) -> Routing:
    """--model NAME: every head to one model."""
    return Routing("provisional", {t: model for t in sorted(tasks)}, note=f"--model {model}", source="model")
