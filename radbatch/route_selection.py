"""`radbatch route`: run every candidate model on a dev archive through annotate, score every head with
`radbatch eval`, and write routing.toml sending each head to the model that is better on dev.

Ties (within 1e-9) go to the cheaper model (smaller GGUF + adapter on disk). Every model-file member a routing
uses is loaded, with its KV streams, by every worker, so a head goes to a second model-file member only when its
dev gain over the main one (the member serving most heads) is beyond noise: the paired bootstrap interval of the
difference lies above 0 (`_fewer_members`). Test scores are never used here.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from radbatch.annotation.plan import AnnotateOptions, select_tasks
from radbatch.heads.models import load_models, materialise
from radbatch.heads.recipes import load_recipes

from .errors import InputError


@dataclass(frozen=True)
class Choice:
    task: str
    metric: str
    model: str
    score: float | None
    n: int
    runner_up: str | None
    runner_up_score: float | None
    note: str = ""      # why the head is not on its best-scoring member (written as a comment)


def _cost(spec) -> int:
    if spec.is_rules:
        return 0  # no model file to map or run: the cheapest member, so ties go to it
    spec = materialise(spec)
    return sum(Path(p).stat().st_size for p in (spec.path, spec.adapter) if p)


def route(base: AnnotateOptions, models_file: Path, work_dir: Path, candidates: list[str] | None = None
          ) -> list[Choice]:
    from radbatch.annotation.pipeline import annotate

    recipes = load_recipes()
    models = load_models(models_file, set(recipes.profiles))
    names = candidates or list(models)
    unknown = [n for n in names if n not in models]
    if unknown:
        raise InputError(f"Unknown model {unknown[0]!r}. Known: {', '.join(models)}")
    wanted = [t.id for t in select_tasks(recipes, base.tasks)]
    serves = {n: _served(models[n], wanted) for n in names}
    every = list(recipes.order)
    for task in every:  # the routing file needs a model for every head: say so before any dev run
        if not any(task in _served(models[n], every) for n in names):
            raise InputError(f"no candidate model can serve {task}: add a model-file member to --candidates")
    for name in names:
        if serves[name]:
            tasks = ",".join(serves[name]) if models[name].is_rules else base.tasks
            annotate(replace(base, output=str(work_dir / f"dev-{name}.parquet"), model=name,
                             models_file=str(models_file), tasks=tasks))
    return choose(work_dir, {n: models[n] for n in names}, every)


def choose(work_dir: Path, models: dict, every: list[str]) -> list[Choice]:
    """The routing the candidates' dev annotations (work_dir/dev-<name>.parquet, a candidate without one serves
    nothing) imply: the best score per head, then `_fewer_members`. `route` calls it after annotating; it can
    also recompute a routing from annotations kept from an earlier run."""
    from .evaluation import evaluate

    scores: dict[str, dict[str, tuple[str, float, int]]] = {}
    for name in models:
        out = work_dir / f"dev-{name}.parquet"
        heads = evaluate([out]).runs[0].heads if out.exists() else {}
        scores[name] = {t: (h.primary, h.metrics[h.primary].value, h.metrics[h.primary].n) for t, h in heads.items()}
    costs = {n: _cost(spec) for n, spec in models.items()}
    choices = [_choose(task, [n for n, spec in models.items() if task in _served(spec, every)], scores, costs)
               for task in every]

    def compare(task: str, a: str, b: str):
        """b - a on the head's primary metric, paired over the dev reports both scored."""
        paired = evaluate([work_dir / f"dev-{a}.parquet", work_dir / f"dev-{b}.parquet"], tasks=[task]).comparison
        return (paired or {}).get(task, {}).get(scores[a][task][0])

    return _fewer_members(choices, {n: spec.is_rules for n, spec in models.items()}, scores, compare)


def _fewer_members(choices: list[Choice], is_rules: dict[str, bool], scores: dict, compare) -> list[Choice]:
    """Move a head from an extra model-file member to the main one (the member serving most measured heads;
    ties: the one listed first) unless compare(task, main, other), the paired b - a with its 95% interval,
    says the other member is better beyond noise (ci_low > 0). A worker loads every model-file member a
    routing uses, so a second one must pay for its memory and load time."""
    served = Counter(c.model for c in choices if c.score is not None and not is_rules[c.model])
    if len(served) < 2:
        return choices
    main = max(served, key=lambda m: (served[m], -list(is_rules).index(m)))
    out = []
    for c in choices:
        other = c.model
        if c.score is None or is_rules[other] or other == main or c.task not in scores.get(main, {}):
            out.append(c)
            continue
        diff = compare(c.task, main, other)
        if diff is not None and diff.ci_low > 0:
            out.append(c)
            continue
        gap = "not comparable" if diff is None else (
            f"{other} - {main} = {diff.diff:+.3f} [{diff.ci_low:+.3f}, {diff.ci_high:+.3f}]")
        out.append(replace(c, model=main, score=scores[main][c.task][1], runner_up=other, runner_up_score=c.score,
                           note=f"kept on {main}, which serves most heads: {gap} on dev is within noise, and "
                                f"{other} would be a second model in every worker"))
    return out


def _served(spec, tasks: list[str]) -> list[str]:
    """The heads among `tasks` a model can serve: all for a model file, radbatch.engines.rules.HEADS for rules."""
    if not spec.is_rules:
        return list(tasks)
    from radbatch.engines.rules import HEADS
    return [t for t in tasks if t in HEADS]


def _choose(task: str, names: list[str], scores: dict, costs: dict) -> Choice:
    scored = [(scores[n][task][1], -costs[n], n) for n in names if task in scores[n]]
    if not scored:  # no dev gold for this head: cheapest model, unmeasured
        cheapest = min(names, key=lambda n: costs[n])
        return Choice(task, "none", cheapest, None, 0, None, None)
    ranked = sorted(scored, key=lambda s: (round(s[0], 9), s[1]), reverse=True)
    best, second = ranked[0], (ranked[1] if len(ranked) > 1 else None)
    metric, _, n = scores[best[2]][task]
    return Choice(task, metric, best[2], best[0], n, second[2] if second else None, second[0] if second else None)


def _next_version(path: Path) -> int:
    """One more than the routing file being replaced (1 for a new file): runs record the version they used."""
    try:
        version = tomllib.loads(path.read_text()).get("version", 0)
    except (OSError, ValueError):
        version = 0
    return (version if isinstance(version, int) else 0) + 1


def write_routing(choices: list[Choice], path: Path, dev: str) -> None:
    measured = all(c.score is not None for c in choices)
    lines = ["# Which model serves each task head. Used by `radbatch annotate`; written by `radbatch route`",
             f"# from dev-set scores on {dev}. Rerun `radbatch route` to update it.",
             f"version = {_next_version(path)}",
             f'status = "{"measured" if measured else "provisional"}"',
             f'note = "chosen on dev archive {Path(dev).name}; ties go to the cheaper model; a second model-file member only for a dev gain beyond noise"', "", "[routes]"]
    lines += [f'{c.task} = "{c.model}"' for c in choices]
    for c in choices:
        if c.score is None:
            continue
        lines += [""] + ([f"# {c.note}"] if c.note else [])
        lines += [f"[scores.{c.task}]", f'metric = "{c.metric}"', f'model = "{c.model}"',
                  f"dev_score = {c.score:.4f}", f"n = {c.n}"]
        if c.runner_up is not None:
            lines += [f'runner_up = "{c.runner_up}"', f"runner_up_score = {c.runner_up_score:.4f}"]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
