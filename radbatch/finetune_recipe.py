"""Finetune recipes (recipes/finetune/*.toml): strict, typed, every problem reported at once.

Field names follow peft's LoraConfig (r, lora_alpha, lora_dropout, target_modules) and the usual
training knobs. Loaded without importing torch, so `radbatch recipes validate` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from .errors import RecipeError
from .recipes import read_toml


@dataclass(frozen=True)
class FinetuneRecipe:
    name: str
    r: int
    lora_alpha: int
    lora_dropout: float
    target_modules: tuple[str, ...]
    learning_rate: float
    lr_scheduler: str
    warmup_steps: int
    max_steps: int
    batch_size: int
    grad_accum: int
    max_length: int
    seed: int
    dev_fraction: float
    checkpoint_every: int
    task_weights: tuple[tuple[str, float], ...]


_TYPES = {f.name: f.type for f in fields(FinetuneRecipe)}
SCHEDULERS = ("linear", "cosine", "constant")


def load_finetune_recipe(path: Path) -> FinetuneRecipe:
    problems: list[str] = []
    data = read_toml(path, problems) or {}
    values = {"name": path.stem}
    for key, val in data.items():
        if key not in _TYPES or key == "name":
            problems.append(f"{path}: unknown key {key!r} (allowed: {', '.join(k for k in _TYPES if k != 'name')})")
            continue
        want = _TYPES[key]
        if key == "task_weights":
            if not isinstance(val, dict) or not all(isinstance(v, (int, float)) for v in val.values()):
                problems.append(f"{path}: task_weights must be a table of task = weight")
                continue
            val = tuple(sorted((k, float(v)) for k, v in val.items()))
        elif key == "target_modules":
            if not isinstance(val, list) or not all(isinstance(v, str) for v in val):
                problems.append(f"{path}: target_modules must be a list of module names")
                continue
            val = tuple(val)
        elif want == "int" and not (isinstance(val, int) and not isinstance(val, bool)):
            problems.append(f"{path}: {key} must be an integer")
        elif want == "float" and not isinstance(val, (int, float)):
            problems.append(f"{path}: {key} must be a number")
        values[key] = val
    for key in _TYPES:
        if key not in values:
            problems.append(f"{path}: missing key {key!r}")
    if values.get("lr_scheduler") not in SCHEDULERS:
        problems.append(f"{path}: lr_scheduler must be one of {', '.join(SCHEDULERS)}")
    if problems:
        raise RecipeError(problems)
    return FinetuneRecipe(**values)
