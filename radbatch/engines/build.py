"""Engines built once per worker from its WorkerSpec (simple, batched or rules), then fed whole work units."""

from __future__ import annotations

from .simple import LlamaEngine
from .spec import ENGINE_KINDS, Completion, Request, WorkerSpec, progress_step


def build_engines(spec: WorkerSpec, needed: set[str]) -> dict:
    if spec.engine not in ENGINE_KINDS:
        raise ValueError(f"Unknown engine {spec.engine!r}. Known: {', '.join(ENGINE_KINDS)}")
    rules = {name for name in needed if spec.models[name].is_rules}  # radbatch/engines/rules_engine.py, either engine
    engines: dict = {}
    if rules:
        from .rules_engine import RulesEngine
        engines = {name: RulesEngine(spec.models[name]) for name in sorted(rules)}
    needed = set(needed) - rules
    if spec.engine == "batched":
        from .batched import BatchedEngine
        return {**engines, **{name: BatchedEngine(spec.models[name], spec.threads, spec.seed, spec.grammars,
                                                  spec.batch) for name in sorted(needed)}}
    return {**engines, **{name: LlamaEngine(spec.models[name], spec.threads, spec.seed, spec.grammars)
                          for name in sorted(needed)}}


def run_unit(engines: dict, requests: list[Request]) -> list[Completion]:
    """A whole work unit (reports x heads). Grouped by model, then in request order (report-major),
    so consecutive prompts share the report prefix."""
    out: list[Completion | None] = [None] * len(requests)
    for name, engine in engines.items():
        mine = [i for i, req in enumerate(requests) if req.model == name]
        if hasattr(engine, "complete_many"):  # the batched engine takes the model's whole share at once
            for i, comp in zip(mine, engine.complete_many([requests[i] for i in mine])):
                out[i] = comp
        else:
            for i in mine:
                out[i] = engine.complete(requests[i])
                progress_step()
    return [c if c is not None else Completion("", "error", "no engine for model") for c in out]
