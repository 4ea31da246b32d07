"""annotate: plan -> job (pending units) -> an executor (local pool or Ray) -> part tables -> parts -> final Parquet.

Resume: units already in readable parts are skipped, so a rerun after Ctrl-C, kill -9 or power loss
continues where it stopped; a finished output with the same run key means nothing to do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from radbatch import __version__
from radbatch.errors import StorageError, working_on

from .finalize import finalize
from .job import Job, Parallelism, plan_job
from .output import RunStore
from .plan import AnnotateOptions, Plan, build_plan
from .result_store import RunCache
from .settings import PartFlush


class Interrupted(Exception):
    def __init__(self, saved_rows: int, work_dir: str):
        self.saved_rows, self.work_dir = saved_rows, work_dir
        super().__init__(f"interrupted; {saved_rows} rows saved in {work_dir}")


@dataclass
class RunSummary:
    rows: int = 0
    computed_rows: int = 0
    outputs: list = field(default_factory=list)
    head_counts: dict = field(default_factory=dict)   # head key -> {status: count}
    row_counts: dict = field(default_factory=dict)
    duplicated_ids: int = 0
    wall_seconds: float = 0.0
    nothing_to_do: bool = False
    routing_status: str = ""
    routing_note: str = ""   # said when the routing is not today's default (an output keeps its recorded one)
    decoded_requests: int = 0   # head requests sent to the engines (each once; a retried unit is not recounted)
    reused_results: int = 0     # head results taken from the --cache store instead
    rejected_results: int = 0   # stored entries that failed a check (ignored and decoded again)
    store_failed: bool = False  # the store failed mid-run; the run went on without it
    cache: str = ""             # the --cache folder, if any

    @property
    def row_errors(self) -> int:
        return sum(c.get("error", 0) + c.get("truncated", 0) for c in self.head_counts.values())


def _provenance(plan: Plan, ran: Parallelism) -> dict:
    """workers and threads are what the executor ran (Ray: annotators over all nodes), not what was asked."""
    return {
        "radbatch_version": __version__, "run_key": plan.run_key, "recipes": plan.key_material["recipes"],
        "models": {n: {"path": m.path, "adapter": m.adapter, **plan.hashes[n], "licence": m.licence,
                       "profile": m.profile} for n, m in plan.models.items()},
        "routing": plan.key_material["routing"], "routing_status": plan.routing.status,
        "options": {**plan.key_material, "workers": ran.workers, "threads": ran.threads, "engine": plan.opts.engine,
                    "executor": plan.opts.executor},
        "questions": {f"radiology_qa{h.suffix}": h.question for h in plan.heads if h.question},
    }


def _open_store(plan: Plan) -> tuple[RunStore | None, bool]:
    """Decide between a fresh run, a resume, nothing to do (store None) or a refusal; also whether to wipe.

    Every interrupted run resumes with the same command: a run that --restart started records it in run.json,
    and rerunning the same --restart command (or the command without --restart) continues that run instead of
    wiping its parts again or refusing the previous run's output that it was started to replace."""
    o = plan.opts
    store = RunStore(o.output)
    done_key = store.complete_key()
    pending = store.pending_info()
    same_pending = pending is not None and pending.get("run_key") == plan.run_key
    continuing_restart = same_pending and bool(pending.get("restart"))
    wipe = o.restart and not continuing_restart
    may_replace = o.restart or continuing_restart
    if store.output_taken() and not may_replace:
        raise StorageError(f"{store.output} exists and is not a radbatch output. Choose another -o or remove it.")
    if done_key == plan.run_key and not o.restart and not o.retry_errors and not continuing_restart:
        return None, False
    if done_key and done_key != plan.run_key and not may_replace:
        raise StorageError(f"{o.output} holds the output of another run (run key {done_key}, this run "
                           f"{plan.run_key}): inputs, recipes, models, routing or column options differ. "
                           "Use --restart to overwrite it, or another -o.")
    if pending and not same_pending and not o.restart:
        raise StorageError(f"{store.work} holds an unfinished run with another run key ({pending.get('run_key')}); "
                           "inputs, recipes, models, routing or column options changed. Rerun with the original "
                           "options to resume, or use --restart to start over.")
    return store, wipe


def annotate(opts: AnnotateOptions, on_start: Callable[[Plan, int, int], None] | None = None) -> RunSummary:
    """on_start(plan, workers, threads) is called once the executor has resolved what will run."""
    t0 = time.monotonic()
    working_on("planning (models, recipes, input files)")
    plan = build_plan(opts)
    working_on(f"opening the output {opts.output}")
    summary = RunSummary(routing_status=plan.routing.status,
                         routing_note=plan.routing.note if plan.routing.status == "recorded" else "")
    cache = RunCache.open(plan, summary)   # --cache (radbatch/annotation/result_store.py): refused or opened before any write
    store, wipe = _open_store(plan)
    if store is None:
        summary.nothing_to_do = True
        done = RunStore(opts.output)
        if done.pending_info() is None:   # a finished run keeps no copies of report text (older versions did)
            done.cleanup_parts()
        summary.outputs = done.final_paths(plan.files)
        _count(summary, summary.outputs, plan)
        cache.close()
        return summary
    retry = opts.retry_errors and store.complete_key() == plan.run_key
    r = plan.routing   # recorded so that a new default routing does not strand this output (plan._recorded_default)
    store.begin(plan.run_key, plan.key_material, wipe, {"source": r.source, "routes": r.routes, "version": r.version})
    if retry:
        from .retry import reopen_with_errors_removed
        reopen_with_errors_removed(store, plan)
    job = plan_job(plan, store)
    summary.rows = job.total_rows
    executor = _executor(job, cache)
    try:
        ran = executor.resolve()
        if on_start:
            on_start(plan, ran.workers, ran.threads)
        _write_parts(job, executor.parts(), store, summary)
    finally:
        executor.close()
        cache.close()
    working_on(f"writing the output {opts.output}")
    summary.outputs = finalize(store, plan.files, _provenance(plan, ran),
                               plan.opts.columns.id if plan.opts.columns.id in plan.keep else None, summary.rows)
    store.mark_complete()
    store.cleanup_parts()
    summary.wall_seconds = time.monotonic() - t0
    _count(summary, summary.outputs, plan)
    return summary


def _executor(job: Job, cache: RunCache):
    if job.plan.opts.executor == "ray":  # the same units, read, annotated and assembled in a Ray Data pipeline
        from radbatch.executors.ray_executor import RayExecutor
        return RayExecutor(job, cache)
    from radbatch.executors.local import LocalExecutor
    return LocalExecutor(job, cache)


def _write_parts(job: Job, parts: Iterator[tuple[int, str, object]], store: RunStore, summary: RunSummary) -> None:
    from tqdm import tqdm
    progress = tqdm(total=job.total_rows, initial=job.done_rows, unit="rows", disable=job.plan.opts.quiet,
                    smoothing=0.1, dynamic_ncols=True)
    writer = _PartWriter(store, job.settings.flush)
    try:
        for file_index, unit_id, table in parts:
            writer.add(file_index, unit_id, table)
            summary.computed_rows += table.num_rows
            progress.update(table.num_rows)
        writer.flush_all()
    except KeyboardInterrupt:
        writer.flush_all()  # finished units are safe to keep
        raise Interrupted(summary.computed_rows, str(store.work)) from None
    finally:
        progress.close()
        parts.close()  # stops the worker pool or the Ray pipeline


class _PartWriter:
    """Buffers finished units per input file; flushes a part every `flush.rows` rows or `flush.seconds`."""

    def __init__(self, store: RunStore, flush: PartFlush):
        self.store, self.flush_at, self.buf, self.last = store, flush, {}, time.monotonic()

    def add(self, file_index: int, unit_id: str, table) -> None:
        tables, ids = self.buf.setdefault(file_index, ([], []))
        tables.append(table)
        ids.append(unit_id)
        if (sum(t.num_rows for t in tables) >= self.flush_at.rows
                or time.monotonic() - self.last > self.flush_at.seconds):
            self.flush(file_index)

    def flush(self, file_index: int) -> None:
        import pyarrow as pa
        tables, ids = self.buf.pop(file_index, ([], []))
        if tables:
            self.store.write_part(file_index, pa.concat_tables(tables), ids)
        self.last = time.monotonic()

    def flush_all(self) -> None:
        for idx in list(self.buf):
            self.flush(idx)


def _count(summary: RunSummary, outputs, plan: Plan) -> None:
    import polars as pl

    from radbatch.archive.storage import scan
    lf = pl.concat([scan(p) for p in outputs], how="diagonal_relaxed")
    names = lf.collect_schema().names()
    exprs = [pl.len().alias("__rows")]
    for h in plan.heads:
        col = h.col("status")
        if col in names:
            exprs += [(pl.col(col) == s).sum().alias(f"{col}|{s}") for s in
                      ("ok", "error", "not_applicable", "truncated")]
    exprs += [(pl.col("status") == s).sum().alias(f"status|{s}") for s in
              ("ok", "partial", "failed", "empty_text", "bad_text")]
    if "id_duplicated" in names:
        exprs.append(pl.col("id_duplicated").sum().alias("__dups"))
    row = lf.select(exprs).collect().row(0, named=True)
    summary.rows = row["__rows"]
    summary.duplicated_ids = row.get("__dups") or 0
    for h in plan.heads:
        summary.head_counts[h.key] = {s: row.get(f"{h.col('status')}|{s}", 0) for s in
                                      ("ok", "error", "not_applicable", "truncated")}
    summary.row_counts = {s: row[f"status|{s}"] for s in ("ok", "partial", "failed", "empty_text", "bad_text")}
