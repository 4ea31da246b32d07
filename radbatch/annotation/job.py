"""The annotate job both executors run, decided once on the driver: which units are pending, how a unit becomes its
part table, what every worker is shipped, and the parallelism that actually ran.

    Pending      the units still to annotate, cut once here: `unit_size` rows each, --limit across the input
                 files in order, units already in readable parts skipped
    RowJob       (rows.py) the prepare/assemble arguments, one bundle
    WorkerSpec   (engine.py) models, grammars, threads, engine settings and the test-only fault channel
    Parallelism  what the executor resolved: local worker processes, or Ray annotators over all nodes

The local executor (pipeline.LocalExecutor over pool.Pool) and the Ray executor (executor_ray.RayExecutor over
ray_data) each take a Job, resolve their Parallelism and yield the same stream of (file index, unit id, part
table); provenance and the start line record the Parallelism the executor returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from radbatch.engines.spec import WorkerSpec
from radbatch.errors import working_on

from .output import RunStore
from .plan import Plan
from .rows import RowJob
from .settings import Settings


@dataclass(frozen=True)
class UnitRef:
    """A work unit: (file, first row, rows)."""

    file_index: int
    start: int
    rows: int

    @property
    def unit_id(self) -> str:
        return f"{self.file_index}:{self.start}"


@dataclass
class Pending:
    """The pending units of a run, held compactly so the driver's memory does not grow with the archive (a
    million rows are 125,000 units): per input file, the first rows of its pending units as one int64 array, and
    the file's rows within --limit. Priors are not held: they are read next to the units' rows (priors.parquet)."""

    unit_size: int
    starts: dict          # file index -> np.ndarray of first rows, ascending
    rows: dict            # file index -> rows of the file within --limit

    def __len__(self) -> int:
        return sum(len(s) for s in self.starts.values())

    def refs(self, file_index: int, starts=None) -> list[UnitRef]:
        rows, size = self.rows[file_index], self.unit_size
        starts = self.starts[file_index] if starts is None else starts
        return [UnitRef(file_index, s, min(size, rows - s)) for s in starts.tolist()]

    def pending_rows(self, file_index: int) -> int:
        import numpy as np
        starts = self.starts.get(file_index)
        if starts is None or not len(starts):
            return 0
        return int(np.minimum(self.unit_size, self.rows[file_index] - starts).sum())

    def __iter__(self) -> Iterator[UnitRef]:
        for index in sorted(self.starts):
            yield from self.refs(index)


@dataclass(frozen=True)
class Parallelism:
    """What ran: worker processes (local) or annotator actors summed over all nodes (Ray), and the llama.cpp
    threads each. A Ray run with no pending unit starts no annotator: 0 x 0."""

    workers: int
    threads: int


@dataclass
class Job:
    plan: Plan
    pending: Pending
    rows: RowJob
    priors_path: str | None    # the temporal head's prior reports (priors.parquet in the work directory)
    total_rows: int            # rows within --limit
    done_rows: int             # of them, in units already written

    @property
    def settings(self) -> Settings:
        return self.plan.settings

    def worker_spec(self, threads: int) -> WorkerSpec:
        """The spec every worker or actor builds its engines from; `threads` as the executor resolved them."""
        p = self.plan
        return WorkerSpec(p.models, {h.recipe.id: h.grammar() for h in p.heads}, threads, engine=p.opts.engine,
                          batch=self.settings.batch, test_faults=self.settings.test_faults)


def plan_job(plan: Plan, store: RunStore) -> Job:
    """The job of this run over `store`'s done units (call after retry-errors reopened the store)."""
    from radbatch.archive.priors import build_priors
    o = plan.opts
    wants_priors = any("prior" in h.recipe.inputs for h in plan.heads) and o.columns.patient \
        and o.columns.date
    priors = build_priors(plan.files, o.columns, o.encoding, store.work, o.limit) if wants_priors else None
    pending, total, done = cut_units(plan, store.done_units())
    rows = RowJob(o.columns, plan.heads, plan.head_models, plan.recipes.profiles, plan.keep, o.chexpert_numeric)
    return Job(plan, pending, rows, str(priors) if priors is not None else None, total, done)


def cut_units(plan: Plan, done: dict) -> tuple[Pending, int, int]:
    """(pending units, rows within --limit, rows in done units). Units are cut from each file's row count: the
    Parquet footer's, or one streaming pass over a CSV file (CSV keeps no row count)."""
    import numpy as np

    from radbatch.archive.reading import iter_batches
    o = plan.opts
    size = o.unit_size
    done_starts: dict[int, list[int]] = {}
    for unit in done:
        index, start = unit.split(":")
        done_starts.setdefault(int(index), []).append(int(start))
    remaining, pending, total, done_rows = o.limit, Pending(size, {}, {}), 0, 0
    for f in plan.files:
        rows = f.rows
        if rows is None:
            working_on(f"counting the rows of input file {f.path}")
            rows = sum(b.num_rows for b in iter_batches(f, o.encoding, o.columns.text_columns()))
        if remaining is not None:
            rows = min(rows, remaining)
            remaining -= rows
        starts = np.arange(0, rows, size, dtype=np.int64)
        is_done = np.isin(starts, np.array(done_starts.get(f.index, []), dtype=np.int64))
        total += rows
        done_rows += int(np.minimum(size, rows - starts[is_done]).sum())
        pending.starts[f.index], pending.rows[f.index] = starts[~is_done], rows
    return pending, total, done_rows
