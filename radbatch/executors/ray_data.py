"""The Ray Data side of `--executor ray`: a Datasource of whole work units and the actor that annotates them.

A dataset row is one work unit of the local executor (file index, first row, the unit's input rows as Arrow IPC,
the unit's prior reports), so no Ray block boundary can cut a unit. Read tasks read only the pending units, each
with pyarrow straight from the file system every node sees: a Parquet task reads just the row groups its units
cover, a CSV file is one task streamed from its start (CSV has no random access). The actor runs the local
executor's worker code on each unit (`rows.prepare`, `engine.run_unit`, `rows.assemble`) with engines built once,
and returns the unit's part table as Arrow IPC, exactly as the local pool would have produced it.

This module imports ray at the top; only executor_ray imports it, after Ray was found.
"""

from __future__ import annotations

import json
import os
from typing import Iterator

import pyarrow as pa
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from radbatch.annotation.job import Pending, UnitRef
from radbatch.archive import storage
from radbatch.archive.reading import InputFile, iter_units

UNIT_SCHEMA = pa.schema([("unit", pa.string()), ("file_index", pa.int32()), ("source_file", pa.string()),
                         ("start_row", pa.int64()), ("rows", pa.int64()), ("data", pa.binary()),
                         ("priors", pa.string())])
RESULT_SCHEMA = pa.schema([("unit", pa.string()), ("file_index", pa.int32()), ("part", pa.binary()),
                           ("annotator", pa.string()), ("raised", pa.string()), ("decoded", pa.int64()),
                           ("reused", pa.int64()), ("rejected", pa.int64()), ("store_failed", pa.bool_())])


def to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def _unit_row(f: InputFile, u: UnitRef, table: pa.Table, priors: dict[int, str]) -> pa.Table:
    return pa.Table.from_pylist([{"unit": u.unit_id, "file_index": f.index, "source_file": f.path,
                                  "start_row": u.start, "rows": u.rows, "data": to_ipc(table),
                                  "priors": json.dumps({str(k): v for k, v in priors.items()})}],
                                schema=UNIT_SCHEMA)


class UnitPriors:
    """The prior reports of one file's rows [first, end), read in order from priors.parquet (sorted by file and
    row; only the row groups whose statistics can hold those rows), handed out for units asked in row order.
    Memory: one batch of priors at a time."""

    def __init__(self, path: str | None, file_index: int, first: int, end: int):
        self.file = file_index
        self._rows: Iterator[tuple[int, int, str]] = iter(())
        if path is not None:
            import pyarrow.parquet as pq
            pf = pq.ParquetFile(path)
            groups = [i for i in range(pf.metadata.num_row_groups)
                      if self._may_hold(pf.metadata.row_group(i), file_index, first, end)]
            if groups:
                batches = pf.iter_batches(batch_size=4096, row_groups=groups, columns=["file", "row", "prior"])
                self._rows = (r for b in batches for r in zip(*(b.column(c).to_pylist() for c in ("file", "row",
                                                                                                    "prior"))))
        self._head = next(self._rows, None)

    @staticmethod
    def _may_hold(rg, file_index: int, first: int, end: int) -> bool:
        try:
            fs, rs = rg.column(0).statistics, rg.column(1).statistics
            if fs is None or rs is None or not (fs.has_min_max and rs.has_min_max):
                return True
            if fs.max < file_index or fs.min > file_index:
                return False
            return not (fs.min == fs.max == file_index and (rs.max < first or rs.min >= end))
        except (AttributeError, IndexError):
            return True

    def take(self, start: int, n: int) -> dict[int, str]:
        """Priors of rows start..start+n-1; earlier rows are skipped for good."""
        out: dict[int, str] = {}
        while self._head is not None and (self._head[0], self._head[1]) < (self.file, start + n):
            f, row, text = self._head
            if (f, row) >= (self.file, start):
                out[row] = text
            self._head = next(self._rows, None)
        return out


def unit_tables(f: InputFile, units: list[UnitRef], encoding: str, text_columns: set[str],
                unit_size: int) -> Iterator[tuple[UnitRef, pa.Table]]:
    """Each wanted unit (in file order) with its rows, cut exactly as the local executor cuts them."""
    if f.kind == "parquet":
        return _parquet_unit_tables(f, units)
    return _csv_unit_tables(f, units, encoding, text_columns, unit_size)


def _parquet_unit_tables(f: InputFile, units: list[UnitRef]) -> Iterator[tuple[UnitRef, pa.Table]]:
    """Reads only the row groups the units cover (a unit may span two row groups)."""
    import pyarrow.parquet as pq
    pf = pq.ParquetFile(storage.open_input(f.path))   # a local path or an s3:// object
    bounds, first = [], 0
    for i in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(i).num_rows
        bounds.append((first, first + n))
        first += n
    cached: tuple[list[int], int, pa.Table] | None = None   # (row groups, first row, their rows)
    for u in units:
        groups = [i for i, (a, b) in enumerate(bounds) if a < u.start + u.rows and b > u.start]
        if cached is None or cached[0] != groups:
            cached = (groups, bounds[groups[0]][0], pf.read_row_groups(groups, use_threads=False))
        yield u, cached[2].slice(u.start - cached[1], u.rows).combine_chunks()


def _csv_unit_tables(f: InputFile, units: list[UnitRef], encoding: str, text_columns: set[str],
                     unit_size: int) -> Iterator[tuple[UnitRef, pa.Table]]:
    """Streams the file from its start (CSV has no row index) up to the last wanted unit."""
    wanted = {u.start: u for u in units}
    last = max(wanted)
    for start, table in iter_units(f, encoding, text_columns, unit_size):
        if start in wanted:
            u = wanted[start]
            yield u, table.slice(0, u.rows)
        if start >= last:
            return


class UnitDatasource(Datasource):
    """The pending work units of an archive; `get_read_tasks` groups them into read tasks per file. A read task
    carries only its units' first rows (a slice of `Pending`), and reads their rows and priors itself."""

    def __init__(self, files: list[InputFile], units: Pending, encoding: str, text_columns: set[str],
                 priors_path: str | None = None):
        super().__init__()
        self.files = {f.index: f for f in files}
        self.units, self.encoding, self.text_columns = units, encoding, text_columns
        self.unit_size, self.priors_path = units.unit_size, priors_path

    def get_name(self) -> str:
        return "RadbatchUnits"

    def estimate_inmemory_data_size(self) -> int | None:
        total = sum(f.rows or 0 for f in self.files.values())
        if not total:
            return None
        return int(sum(self.files[i].size * self.units.pending_rows(i) / total for i in self.units.starts)) or None

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context=None) -> list[ReadTask]:
        pending_rows = sum(self.units.pending_rows(i) for i in self.units.starts)
        target = max(self.unit_size, -(-pending_rows // max(1, parallelism)))
        tasks = []
        for index, starts in sorted(self.units.starts.items()):
            if not len(starts):
                continue
            f = self.files[index]
            for group in (self._parquet_groups(f, starts, target, self.unit_size) if f.kind == "parquet"
                          else [starts]):
                tasks.append(self._task(f, group))
        return tasks

    @staticmethod
    def _parquet_groups(f: InputFile, starts, target: int, unit_size: int) -> list:
        """Consecutive units, at least `target` rows a task. A task starts only in another row group than the
        task before it started in, so a row group is read by at most two tasks (a unit may span two row groups),
        and a one-row-group file is one task (its units become separate blocks downstream)."""
        import numpy as np
        import pyarrow.parquet as pq
        meta = pq.ParquetFile(storage.open_input(f.path)).metadata
        rg_starts = np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])[:-1]
        group_of = np.searchsorted(rg_starts, starts, side="right") - 1
        cuts, rows, first = [], 0, 0   # rows in the group that starts at index `first`
        for k in range(len(starts)):
            if rows >= target and group_of[k] != group_of[first]:
                cuts.append(k)
                rows, first = 0, k
            rows += unit_size
        return np.split(starts, cuts)

    def _task(self, f: InputFile, starts) -> ReadTask:
        encoding, text_columns, unit_size, priors_path = self.encoding, self.text_columns, self.unit_size, \
            self.priors_path
        units = Pending(unit_size, {f.index: starts}, {f.index: self.units.rows[f.index]})
        s3 = storage.settings()   # the driver's endpoint for s3:// inputs (credentials come from the node)

        def read():
            storage.use(s3)
            refs = units.refs(f.index)
            priors = UnitPriors(priors_path, f.index, refs[0].start, refs[-1].start + refs[-1].rows)
            return (_unit_row(f, u, table, priors.take(u.start, u.rows))
                    for u, table in unit_tables(f, refs, encoding, text_columns, unit_size))
        rows = units.pending_rows(f.index)
        size = int(f.size * rows / f.rows) if f.rows else None
        return ReadTask(read, BlockMetadata(num_rows=len(starts), size_bytes=size, input_files=[f.path],
                                            exec_stats=None), schema=UNIT_SCHEMA)


class UnitAnnotator:
    """The Ray Data actor: builds its engines once, then annotates whole units (one dataset row each)."""

    def __init__(self, spec, needed: set[str], rows, cache):
        """spec: engine.WorkerSpec (its test_faults is the test-only fault channel); rows: rows.RowJob; cache: the
        run's result_store.RunCache for annotators (--cache: a client of the driver's StoreServer)."""
        import ray

        from radbatch.engines.build import build_engines
        self.rows, self.faults, self.cache = rows, spec.test_faults, cache
        try:
            self.engines = build_engines(spec, needed) if needed else {}
        except Exception as exc:  # never the traceback of a report; executor_ray names the node
            raise RuntimeError(f"could not load its model(s): {type(exc).__name__}: {exc}") from None
        ctx = ray.get_runtime_context()
        self.name = f"{ctx.get_node_id()}/{os.getpid()}"

    def __call__(self, batch: pa.Table) -> pa.Table:
        from radbatch.engines.build import run_unit

        from .pool import crash_if_asked
        rows, out = self.rows, []
        for row in batch.to_pylist():
            priors = {int(k): v for k, v in json.loads(row["priors"]).items()}
            work = rows.prepare(row["file_index"], row["source_file"], row["start_row"], from_ipc(row["data"]),
                                priors)
            completions, failure, raised = [], "", None
            if rows.heads:   # as the local pool: an engine exception fails the unit's heads, not the run
                try:
                    crash_if_asked(row["unit"], self.faults)
                    decoded = run_unit(self.engines, self.cache.to_decode(work))   # only what the store lacks
                except Exception as exc:
                    decoded, failure = None, f"engine error: {type(exc).__name__}: {exc}"
                    raised = type(exc).__name__   # the driver stops the run when units keep raising
                completions = self.cache.completions(work, decoded)
            table = rows.assemble(work, completions, failure)
            out.append({"unit": row["unit"], "file_index": row["file_index"], "part": to_ipc(table),
                        "annotator": self.name, "raised": raised, **self.cache.counts.take()})
        return pa.Table.from_pylist(out, schema=RESULT_SCHEMA)
