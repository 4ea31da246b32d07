"""The local executor: the job's units read and prepared on the driver, computed by local worker processes
(pool.Pool, supervised), assembled on the driver again; the same part stream as the Ray executor."""

from __future__ import annotations

from typing import Iterator

from radbatch.annotation.job import Job, Parallelism
from radbatch.annotation.plan import check_memory, default_parallelism
from radbatch.annotation.result_store import RunCache
from radbatch.annotation.rows import UnitWork
from radbatch.archive.priors import PriorCursor
from radbatch.archive.reading import iter_units
from radbatch.errors import working_on


class LocalExecutor:
    """The job on local worker processes (pool.Pool): units are read and prepared here, on the driver, computed in
    the workers and assembled here again."""

    def __init__(self, job: Job, cache: RunCache):
        self.job, self.pool, self.cache = job, None, cache
        self.ran = Parallelism(*default_parallelism(job.plan.opts.workers, job.plan.opts.threads))

    def resolve(self) -> Parallelism:
        return self.ran

    def parts(self) -> Iterator[tuple[int, str, object]]:
        """(file index, unit id, part table) per unit, as units finish."""
        from radbatch.executors.pool import Pool
        job, plan = self.job, self.job.plan
        if plan.heads:
            check_memory(plan, self.ran.workers)
            spec = job.worker_spec(self.ran.threads)
            self.pool = Pool(spec, self.ran.workers, set(spec.models), watchdog=job.settings.watchdog,
                             quiet=plan.opts.quiet)
            self.pool.start()
            cache = self.cache   # --cache (result_store.py): decode only requests the store has not seen
            outcomes = ((o.unit, cache.completions(o.unit, o.completions), o.failure)
                        for o in self.pool.run((w.unit_id, w, cache.to_decode(w)) for w in read_units(job)))
        else:
            outcomes = ((w, [], "") for w in read_units(job))
        try:
            for work, completions, failure in outcomes:
                working_on(f"unit {work.unit_id} (rows from {work.start_row}) of input file {work.source_file}")
                yield work.file_index, work.unit_id, job.rows.assemble(work, completions, failure)
        finally:
            self.close()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


def read_units(job: Job) -> Iterator[UnitWork]:
    """The job's pending units, read in file order on the driver and prepared for the heads."""
    o = job.plan.opts
    priors = PriorCursor(job.priors_path)
    for f in job.plan.files:
        starts, rows = job.pending.starts.get(f.index), job.pending.rows.get(f.index, 0)
        if starts is None or not len(starts):
            continue
        k = 0
        working_on(f"reading input file {f.path}")
        for start, table in iter_units(f, o.encoding, o.columns.text_columns(), o.unit_size):
            if start != starts[k]:
                continue   # a done unit
            table = table.slice(0, rows - start)   # the last unit within --limit
            working_on(f"unit {f.index}:{start} (rows from {start}) of input file {f.path}")
            yield job.rows.prepare(f.index, f.path, start, table, priors.take(f.index, start, table.num_rows))
            k += 1
            if k == len(starts):
                break
