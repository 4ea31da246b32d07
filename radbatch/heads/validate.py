"""`radbatch recipes validate`: every file under recipes/ is checked by the loader that owns it."""

from __future__ import annotations

from pathlib import Path

from radbatch.errors import InputError, RecipeError

from .models import load_models
from .recipes import CONFIDENCE_KINDS, ORDER_FILE, load_recipes, recipes_dir
from .routing import load_routing


def validate_all(root: str | Path | None = None) -> list[Path]:
    root = Path(root) if root else recipes_dir()
    problems: list[str] = []
    checked: list[Path] = []
    try:
        recipes = load_recipes(root)
    except RecipeError as exc:
        raise RecipeError(exc.problems) from None
    checked += [root / "profiles.toml", root / ORDER_FILE, *sorted((root / "tasks").glob("*.toml"))]
    models = {}
    for path in sorted(root.rglob("*.toml")):
        if path in checked:
            continue
        try:
            if path.name.startswith("models") or path.parent.name == "models":
                models.update(load_models(path, set(recipes.profiles)))
            elif path.name.startswith("routing"):
                continue  # after all models are known
            elif path.name.startswith("calibration"):
                problems += _calibration(path, recipes)
            elif path.parent.name == "finetune":
                from radbatch.finetune.recipe import load_finetune_recipe
                load_finetune_recipe(path, set(recipes.tasks))
            else:
                problems.append(f"{path}: not a known kind of recipe (tasks/, finetune/, models*.toml, "
                                "routing*.toml, calibration*.toml, profiles.toml, task_order.toml)")
                continue
        except RecipeError as exc:
            problems += exc.problems
        checked.append(path)
    for path in sorted(root.rglob("routing*.toml")):
        try:
            routing = load_routing(path, set(recipes.tasks), set(models))
        except RecipeError as exc:
            problems += exc.problems
            continue
        problems += _rules_routes(path, routing, models)
        checked.append(path)
    if problems:
        raise RecipeError(problems)
    return checked


def _calibration(path: Path, recipes) -> list[str]:
    """calibration*.toml (per-head temperatures, stored beside the routing) through the strict reader that eval
    and review use, against the heads whose answers carry confidences."""
    from radbatch.evaluation.calibration import read_calibration
    try:
        read_calibration(path, tuple(t for t, r in recipes.tasks.items() if r.kind in CONFIDENCE_KINDS))
    except InputError as exc:
        return [f"{path}: {exc}"]
    return []


def _rules_routes(path, routing, models) -> list[str]:
    """A route to a rules member must name a head it serves (radbatch.engines.rules.HEADS)."""
    from radbatch.engines.rules import HEADS
    return [f"{path}: route {task} -> {model!r}, a rules member that serves only {', '.join(HEADS)}"
            for task, model in routing.routes.items() if models[model].is_rules and task not in HEADS]
