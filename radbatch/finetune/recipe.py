"""Finetune recipes (recipes/finetune/*.toml): strict, typed, every problem reported at once.

Field names follow peft's LoraConfig (r, lora_alpha, lora_dropout, target_modules) and the usual
training knobs. Loaded without importing torch, so `radbatch recipes validate` stays light.

task_weights is optional: RadLite's sampling weights are the default (1.0 for a head RadLite does not have: a head
added to recipes/tasks/), a table overrides them task by task,
and a weight of 0 leaves a task out (a task-subset adapter). layers_to_transform is optional (peft's name): LoRA
on the top layers only stops the backward pass there, which halves a CPU step for a 30-layer model.
class_balance (optional, default 0) draws the classes of each closed-label head more evenly (training only);
dev_per_head (optional) sizes the fixed dev-loss set taken from `radbatch finetune --dev-archive`; dev_every (optional)
computes the dev loss at every n-th step's checkpoint only (a forward pass over the dev set can cost tens of steps).
init_adapter (optional, with init_adapter_sha256) starts the LoRA from an earlier run's checkpoint (a
`checkpoints/step-*.pt` of `radbatch finetune`; the path is relative to the recipe file) instead of peft's
initialisation: a warm start that continues a finished run on new data with a new schedule. The checkpoint must
hold LoRA weights of exactly this recipe's shape (r, target_modules, layers_to_transform); its sha256 is pinned so
that the recipe, and therefore the run's fingerprint, names one set of starting weights.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from pathlib import Path

from radbatch.errors import RecipeError
from radbatch.heads.recipes import read_toml

# RadLite's per-task sampling weights (RADLITE.md, "The nine tasks").
RADLITE_TASK_WEIGHTS = {
    "rads_assignment": 3.0, "impression_generation": 1.5, "temporal_comparison": 1.5, "radiology_ner": 1.0,
    "n_staging": 1.0, "m_staging": 1.0, "radiology_nli": 3.0, "abnormality_detection": 1.0, "radiology_qa": 0.5,
}
SCHEDULERS = ("linear", "cosine", "constant")
DTYPES = ("float32", "bfloat16")


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
    dev_max_samples: int      # dev loss is computed on at most this many held-out samples (CPU time)
    checkpoint_every: int
    compute_dtype: str        # float32, or bfloat16 autocast (fast on CPUs with AMX / AVX512-BF16)
    task_weights: tuple[tuple[str, float], ...]
    layers_to_transform: tuple[int, ...] | None = None   # LoRA on these layers only (peft); default all
    class_balance: float = 0.0   # 0 natural proportions .. 1 every class of a closed-label head drawn equally
    dev_per_head: int = 0        # with --dev-archive: dev-loss samples per head (>= 20 for a usable curve)
    dev_every: int = 0           # dev loss every this many steps (a multiple of checkpoint_every); 0: every checkpoint
    init_adapter: str = ""       # warm start: an earlier run's checkpoint (resolved to an absolute path at load)
    init_adapter_sha256: str = ""
    sha256: str = ""

    def weight(self, task: str) -> float:
        return dict(self.task_weights)[task]


_TYPES = {f.name: f.type for f in fields(FinetuneRecipe) if f.name not in ("name", "sha256")}
_OPTIONAL = {"task_weights", "layers_to_transform", "class_balance", "dev_per_head", "dev_every", "init_adapter",
             "init_adapter_sha256"}
_POSITIVE = ("r", "lora_alpha", "max_steps", "batch_size", "grad_accum", "max_length", "checkpoint_every",
             "dev_max_samples")


def load_finetune_recipe(path: Path, known_tasks: set[str] | None = None) -> FinetuneRecipe:
    """known_tasks: the task ids of recipes/tasks (task_weights may name no other); default RadLite's nine."""
    path = Path(path)
    known = set(known_tasks) if known_tasks is not None else set(RADLITE_TASK_WEIGHTS)
    problems: list[str] = []
    data = read_toml(path, problems) or {}
    values: dict = {}
    for key, val in data.items():
        if key not in _TYPES:
            problems.append(f"{path}: unknown key {key!r} (allowed: {', '.join(_TYPES)})")
            continue
        want = _TYPES[key]
        if key == "task_weights":
            val = _task_weights(path, val, known, problems)
        elif key == "target_modules":
            if not isinstance(val, list) or not val or not all(isinstance(v, str) for v in val):
                problems.append(f"{path}: target_modules must be a non-empty list of module names")
                continue
            val = tuple(val)
        elif key == "layers_to_transform":
            if not isinstance(val, list) or not val or not all(isinstance(v, int) and not isinstance(v, bool)
                                                               and v >= 0 for v in val):
                problems.append(f"{path}: layers_to_transform must be a non-empty list of layer numbers (0 = first)")
                continue
            val = tuple(sorted(set(val)))
        elif want == "int" and not (isinstance(val, int) and not isinstance(val, bool)):
            problems.append(f"{path}: {key} must be an integer")
        elif want == "float" and (isinstance(val, bool) or not isinstance(val, (int, float))):
            problems.append(f"{path}: {key} must be a number")
        elif want == "str" and not isinstance(val, str):
            problems.append(f"{path}: {key} must be a string")
        values[key] = val
    for key in _TYPES:
        if key not in values and key not in _OPTIONAL:
            problems.append(f"{path}: missing key {key!r}")
    _check_ranges(path, values, problems)
    if not problems and ("init_adapter" in values or "init_adapter_sha256" in values):
        _check_init_adapter(path, values, problems)
    if problems:
        raise RecipeError(problems)
    weights = {**dict.fromkeys(known, 1.0), **RADLITE_TASK_WEIGHTS}
    weights.update(dict(values.get("task_weights") or ()))
    values["task_weights"] = tuple(sorted((t, float(w)) for t, w in weights.items() if t in known))
    if not any(w > 0 for _, w in values["task_weights"]):
        raise RecipeError([f"{path}: task_weights leaves every task at weight 0"])
    for key in ("learning_rate", "lora_dropout", "dev_fraction", "class_balance"):
        if key in values:
            values[key] = float(values[key])
    return FinetuneRecipe(name=path.stem, sha256=hashlib.sha256(path.read_bytes()).hexdigest(), **values)


def _check_init_adapter(path: Path, values: dict, problems: list[str]) -> None:
    """Both keys or neither; the file exists and is the one pinned. Resolves the path against the recipe's folder."""
    given, pinned = values.get("init_adapter", ""), values.get("init_adapter_sha256", "")
    if not given or not pinned:
        problems.append(f"{path}: init_adapter and init_adapter_sha256 go together (the checkpoint and its sha256)")
        return
    file = (path.parent / given).resolve()
    if not file.is_file():
        problems.append(f"{path}: init_adapter {given} is not a file (looked for {file})")
        return
    from radbatch.archive.fingerprint import hash_file   # streamed; no hash cache written by a validation

    found = hash_file(str(file))
    if found != pinned.lower():
        problems.append(f"{path}: init_adapter {given} has sha256 {found}, the recipe pins {pinned}: "
                        "not the checkpoint this recipe was written for")
        return
    values["init_adapter"] = str(file)


def _task_weights(path: Path, val, known: set[str], problems: list[str]):
    if not isinstance(val, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                                            for v in val.values()):
        problems.append(f"{path}: task_weights must be a table of task = weight (a number >= 0)")
        return None
    for task in sorted(set(val) - known):
        problems.append(f"{path}: task_weights names unknown task {task!r} (known: {', '.join(sorted(known))})")
    return tuple(sorted((k, float(v)) for k, v in val.items()))


def _check_ranges(path: Path, v: dict, problems: list[str]) -> None:
    def num(key):
        x = v.get(key)
        return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None

    for key in _POSITIVE:
        if num(key) is not None and num(key) < 1:
            problems.append(f"{path}: {key} must be at least 1")
    if num("warmup_steps") is not None and num("warmup_steps") < 0:
        problems.append(f"{path}: warmup_steps must be 0 or more")
    if num("learning_rate") is not None and not 0 < num("learning_rate") < 1:
        problems.append(f"{path}: learning_rate must be between 0 and 1 (e.g. 2e-4)")
    if num("lora_dropout") is not None and not 0 <= num("lora_dropout") < 1:
        problems.append(f"{path}: lora_dropout must be in [0, 1)")
    if num("class_balance") is not None and not 0 <= num("class_balance") <= 1:
        problems.append(f"{path}: class_balance must be in [0, 1] (0 natural proportions, 1 fully balanced)")
    if num("dev_per_head") is not None and num("dev_per_head") < 0:
        problems.append(f"{path}: dev_per_head must be 0 or more")
    if num("dev_every") is not None and num("checkpoint_every") is not None and num("checkpoint_every") >= 1 and (
            num("dev_every") < 0 or num("dev_every") % num("checkpoint_every")):
        problems.append(f"{path}: dev_every must be a multiple of checkpoint_every (dev loss is computed at checkpoints)")
    if num("dev_fraction") is not None and not 0 <= num("dev_fraction") < 1:
        problems.append(f"{path}: dev_fraction must be in [0, 1)")
    if "lr_scheduler" in v and v["lr_scheduler"] not in SCHEDULERS:
        problems.append(f"{path}: lr_scheduler must be one of {', '.join(SCHEDULERS)}")
    if "compute_dtype" in v and v["compute_dtype"] not in DTYPES:
        problems.append(f"{path}: compute_dtype must be one of {', '.join(DTYPES)}")
