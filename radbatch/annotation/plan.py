"""Everything decided before work starts: heads, models and routing, input files, the run key.

The run key covers what changes the annotations (inputs, recipes, model and adapter sha256s, routing,
column options, tasks, limit, unit size), never how they are computed (workers, threads, executor).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from radbatch.archive import reading as archive
from radbatch.archive.reading import ColumnOptions, InputFile
from radbatch.engines.spec import BatchSettings, stream_cap
from radbatch.errors import EngineError, InputError
from radbatch.heads.models import (
    ModelSpec,
    check_gguf,
    load_models,
    materialise,
    sha256_file,
)
from radbatch.heads.recipes import Recipes, load_recipes
from radbatch.heads.routing import Routing, load_routing, single_model
from radbatch.heads.tasks import HeadInstance, head_instances

from .output import RunStore
from .settings import Settings

UNIT_SIZE = 8


@dataclass(frozen=True)
class AnnotateOptions:
    inputs: tuple[str, ...]
    output: str
    tasks: str | None = None            # comma list, "all" (None) or "none"
    columns: ColumnOptions = field(default_factory=ColumnOptions)
    questions: tuple[str, ...] = ()
    encoding: str = "utf-8"
    limit: int | None = None
    keep_columns: tuple[str, ...] | None = None
    workers: int | None = None
    threads: int | None = None
    model: str | None = None
    models_file: str | None = None
    routing_file: str | None = None
    adapter: str | None = None
    restart: bool = False
    retry_errors: bool = False
    fail_on_row_errors: bool = False
    chexpert_numeric: bool = False
    quiet: bool = False
    unit_size: int = UNIT_SIZE
    engine: str = "batched"             # batched | simple (engine.ENGINE_KINDS; same output, not in the run key)
    executor: str = "local"             # local | ray (how units are computed; not part of the run key)
    ray_address: str | None = None      # --executor ray: cluster address (None: RAY_ADDRESS, else a local Ray)
    cache: str | None = None            # --cache DIR: the per-row result store (radbatch/annotation/result_store.py; not keyed)
    s3_endpoint: str | None = None      # S3-compatible store for s3:// paths (storage.configure; not in the run key)


@dataclass
class Plan:
    opts: AnnotateOptions
    recipes: Recipes
    heads: list[HeadInstance]
    models: dict[str, ModelSpec]          # model name -> spec (only models some head uses)
    head_models: dict[str, ModelSpec]     # head key -> spec
    routing: Routing
    files: list[InputFile]
    keep: list[str]
    hashes: dict[str, dict]
    run_key: str = ""
    key_material: dict = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)   # read from the environment once, here


def select_tasks(recipes: Recipes, spec: str | None) -> list:
    if spec in (None, "", "all"):
        names = list(recipes.order)  # the registry's order (recipes/task_order.toml): output column order
    elif spec == "none":
        names = []
    else:
        names = [t.strip() for t in spec.split(",") if t.strip()]
    unknown = [t for t in names if t not in recipes.tasks]
    if unknown:
        raise InputError(f"Unknown task {unknown[0]!r}. Known: {', '.join(recipes.tasks)}")
    return [recipes.tasks[t] for t in names]


def _models_and_routing(opts: AnnotateOptions, recipes: Recipes, task_ids: set[str]):
    root = recipes.root
    models_file = Path(opts.models_file) if opts.models_file else root / "models.toml"
    models = load_models(models_file, set(recipes.profiles))
    if opts.model and opts.model not in models:
        if opts.model.endswith(".gguf") or Path(opts.model).exists():
            models = {Path(opts.model).stem: ModelSpec(Path(opts.model).stem, str(Path(opts.model).resolve()),
                                                       None, "chatml", 2048, "radbatch", "unknown")}
            opts_model = Path(opts.model).stem
        else:
            raise InputError(f"Unknown model {opts.model!r}. Known: {', '.join(models)} (or a path to a .gguf)")
    else:
        opts_model = opts.model
    if opts_model:
        routing = single_model(opts_model, set(recipes.tasks))
    elif opts.routing_file:
        routing = replace(load_routing(Path(opts.routing_file), set(recipes.tasks), set(models)), source="file")
    else:
        routing = _recorded_default(opts, load_routing(root / "routing.toml", set(recipes.tasks), set(models)),
                                    set(models))
    if opts.adapter:
        used = {routing.model_for(t) for t in task_ids}
        rules = sorted(t for t in task_ids if models[routing.model_for(t)].is_rules)
        if rules:  # never apply an adapter to nothing: a registry fails loudly
            raise InputError(f"--adapter goes to the routed model of each head, and {', '.join(rules)} "
                             f"{'is' if len(rules) == 1 else 'are'} routed to the rules member, which takes no "
                             "adapter. Add --model NAME (the model the adapter was trained for).")
        models = {n: (ModelSpec(**{**m.__dict__, "adapter": str(Path(opts.adapter).resolve())})
                      if n in used and not m.is_rules else m) for n, m in models.items()}
    return models, routing


def _recorded_default(opts: AnnotateOptions, current: Routing, known: set[str]) -> Routing:
    """An output keeps the default routing it was started with: a run begun (or finished) before a new default
    shipped resumes, or finds nothing to do, with the models it recorded, as long as they are still configured
    (new defaults ship under new model names; the old members stay in models.toml). `--restart` takes today's
    default. A run started with --model or --routing-file records no default and is judged by its key alone."""
    if opts.restart:
        return current
    info = RunStore(opts.output).run_info() or {}
    recorded = info.get("routing") if isinstance(info.get("routing"), dict) else {}
    routes = recorded.get("routes")
    if recorded.get("source") != "default" or not isinstance(routes, dict) or routes == current.routes:
        return current
    if not set(routes) == set(current.routes) or not set(routes.values()) <= known:
        return current   # heads or models changed since: the run key tells the user what differs
    version = recorded.get("version")
    return Routing("recorded", dict(routes), {}, f"recorded when this output was started (routing version "
                   f"{version}); the default is now version {current.version}: use --restart to apply it",
                   version)


def build_plan(opts: AnnotateOptions) -> Plan:
    settings = Settings.from_env()   # the only place the run's environment settings are read
    recipes = load_recipes()
    tasks = select_tasks(recipes, opts.tasks)
    heads = head_instances(tasks, opts.questions)
    models, routing = _models_and_routing(opts, recipes, {t.id for t in tasks})
    used = {routing.model_for(t.id) for t in tasks}
    models = {n: materialise(m) for n, m in models.items() if n in used}
    hashes = {}
    _check_rules_heads(models, routing, tasks)
    for name, m in models.items():
        if m.is_rules:  # no model file: the hash of the rules' source files stands for the weights
            from radbatch.engines.rules import source_sha256
            hashes[name] = {"sha256": source_sha256(), "adapter_sha256": None}
            continue
        check_gguf(m.path, f"model {name!r}")
        if m.adapter:
            check_gguf(m.adapter, f"adapter of model {name!r}")
        hashes[name] = {"sha256": sha256_file(m.path), "adapter_sha256": sha256_file(m.adapter) if m.adapter else None}
        if m.adapter:
            from radbatch.finetune.adapter import check_adapter_base
            check_adapter_base(m.adapter, name, m.path, hashes[name]["sha256"])
    files = [archive.inspect(i, p, opts.encoding) for i, p in enumerate(archive.discover(list(opts.inputs)))]
    archive.check_columns(files, opts.columns)
    keep = _keep_columns(opts, files, heads)
    archive.check_kept_types(files, keep, one_output=not RunStore(opts.output).dir_mode)
    plan = Plan(opts, recipes, heads, models, {h.key: models[routing.model_for(h.recipe.id)] for h in heads},
                routing, files, keep, hashes, settings=settings)
    plan.key_material = _key_material(plan)
    plan.run_key = hashlib.sha256(json.dumps(plan.key_material, sort_keys=True).encode()).hexdigest()[:32]
    return plan


def _check_rules_heads(models: dict[str, ModelSpec], routing: Routing, tasks: list) -> None:
    """A rules member serves only the heads radbatch.engines.rules.HEADS lists, in the format their recipes have."""
    from radbatch.engines.rules import HEADS, check_recipe
    for name, m in models.items():
        if not m.is_rules:
            continue
        mine = [t for t in tasks if routing.model_for(t.id) == name]
        unserved = [t.id for t in mine if t.id not in HEADS]
        if unserved:
            raise InputError(f"model {name!r} is a rules member and serves only {', '.join(HEADS)}; it cannot "
                             f"serve {', '.join(unserved)}. Route those heads to another model in the routing "
                             "file, or choose heads with --tasks.")
        for t in mine:
            problems = check_recipe(t)
            if problems:
                raise InputError(f"model {name!r} (rules) cannot answer the {t.id} recipe: {'; '.join(problems)}")


def _keep_columns(opts: AnnotateOptions, files: list[InputFile], heads: list[HeadInstance]) -> list[str]:
    reserved = {"source_file", "source_row", "status", "id_duplicated", "_source_index"}
    reserved |= {f.name for h in heads for f in h.output_fields()}
    common = [c for c in files[0].columns if all(c in f.columns for f in files)]
    keep = list(opts.keep_columns) if opts.keep_columns is not None else common
    for c in keep:
        if c not in common:
            raise InputError(f"--keep-columns names {c!r}, which is not in every input file; columns in all "
                             f"files: {', '.join(common)}")
        if c in reserved:
            raise InputError(f"input column {c!r} clashes with radbatch's output columns; drop it with "
                             "--keep-columns or rename it")
    return keep


def _key_material(plan: Plan) -> dict:
    o = plan.opts
    used_recipes = {f"tasks/{h.recipe.id}.toml": h.recipe.sha256 for h in plan.heads}
    used_recipes["profiles.toml"] = plan.recipes.sha256.get("profiles.toml")
    return {
        "inputs": archive.file_identities(plan.files),
        "recipes": used_recipes,
        "models": {n: {**plan.hashes[n], "context_size": m.context_size, "profile": m.profile,
                       "chat_template": m.chat_template, "thinking": m.thinking} for n, m in plan.models.items()},
        "routing": {h.key: plan.head_models[h.key].name for h in plan.heads},
        "columns": o.columns.named(), "questions": list(o.questions), "encoding": o.encoding,
        "limit": o.limit, "keep": plan.keep, "unit_size": o.unit_size, "chexpert_numeric": o.chexpert_numeric,
    }


def default_parallelism(workers: int | None, threads: int | None) -> tuple[int, int]:
    """workers x threads <= cores: by default one worker per 2 cores, 2 threads each."""
    cores = os.cpu_count() or 1
    if workers and threads:
        return workers, threads
    if workers:
        return workers, max(1, cores // workers)
    if threads:
        return max(1, cores // threads), threads
    threads = min(2, cores)
    return max(1, cores // threads), threads


COMPUTE_ALLOWANCE = 256 * 2**20      # llama.cpp's compute buffers and the worker's Python
KV_ALLOWANCE_PER_CELL = 64 * 1024  # when the GGUF header does not say (covers 3-4B models at f16)


def kv_streams(engine: str, batch: BatchSettings | None = None) -> int:
    """KV streams of context_size cells one engine instance allocates per model."""
    if engine != "batched":
        return 1
    batch = batch or BatchSettings()
    return batch.n_parallel + batch.n_prefix


def worker_memory(models, engine: str = "simple", batch: BatchSettings | None = None) -> int:
    """Bytes one worker needs: it maps every model it serves (ModelSpecs) and allocates its KV cache. The
    batched engine's streams grow to the longest request it meets, so the check counts them at their cap: the
    model's context, or RADBATCH_BATCHED kv_cells (a report that needs more is then an error on its row)."""
    from radbatch.heads.gguf_meta import kv_cell_bytes
    need = 0
    for m in models:
        if m.is_rules:
            continue  # no model file, no KV cache: a few KiB of Python in a worker that exists anyway
        size = Path(m.path).stat().st_size + (Path(m.adapter).stat().st_size if m.adapter else 0)
        cell = kv_cell_bytes(m.path) or KV_ALLOWANCE_PER_CELL
        cells = stream_cap(m.context_size, batch or BatchSettings()) if engine == "batched" else m.context_size
        need += int(size * 1.1) + kv_streams(engine, batch) * cells * cell + COMPUTE_ALLOWANCE
    return need


def check_memory(plan: Plan, workers: int) -> None:
    """Each worker maps every model it serves; refuse before starting if that cannot fit."""
    need = worker_memory(plan.models.values(), plan.opts.engine, plan.settings.batch) * workers
    avail = _available_memory()
    if avail and need > avail:
        hint = (" With --engine batched, each model holds n_parallel + n_prefix KV streams of up to its context "
                "size: RADBATCH_BATCHED=n_parallel=8 halves their number, kv_cells=1024 caps their size (longer "
                "reports become row errors), or use --engine simple." if plan.opts.engine == "batched" else "")
        raise EngineError(f"{workers} worker(s) x {len(plan.models)} model(s) need about {need / 2**30:.1f} GiB "
                          f"but {avail / 2**30:.1f} GiB is available. Use fewer --workers, route heads to fewer "
                          f"models, or a smaller quantization.{hint}")


def _available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
