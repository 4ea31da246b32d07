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
from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from .archive import InputFile, iter_units
from .executor_ray import UnitRef

UNIT_SCHEMA = pa.schema([("unit", pa.string()), ("file_index", pa.int32()), ("source_file", pa.string()),
                         ("start_row", pa.int64()), ("rows", pa.int64()), ("data", pa.binary()),
                         ("priors", pa.string())])
RESULT_SCHEMA = pa.schema([("unit", pa.string()), ("file_index", pa.int32()), ("part", pa.binary()),
                           ("annotator", pa.string())])


def to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def _unit_row(f: InputFile, u: UnitRef, table: pa.Table) -> pa.Table:
    return pa.Table.from_pylist([{"unit": u.unit_id, "file_index": f.index, "source_file": f.path,
                                  "start_row": u.start, "rows": u.rows, "data": to_ipc(table),
                                  "priors": json.dumps({str(k): v for k, v in u.priors.items()})}],
                                schema=UNIT_SCHEMA)


def unit_tables(f: InputFile, units: list[UnitRef], encoding: str, text_columns: set[str],
                unit_size: int) -> Iterator[tuple[UnitRef, pa.Table]]:
    """Each wanted unit (in file order) with its rows, cut exactly as the local executor cuts them."""
    if f.kind == "parquet":
        return _parquet_unit_tables(f, units)
    return _csv_unit_tables(f, units, encoding, text_columns, unit_size)


def _parquet_unit_tables(f: InputFile, units: list[UnitRef]) -> Iterator[tuple[UnitRef, pa.Table]]:
    """Reads only the row groups the units cover (a unit may span two row groups)."""
    import pyarrow.parquet as pq
    pf = pq.ParquetFile(f.path)
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
    """The pending work units of an archive; `get_read_tasks` groups them into read tasks per file."""

    def __init__(self, files: list[InputFile], units: list[UnitRef], encoding: str, text_columns: set[str],
                 unit_size: int):
        super().__init__()
        self.files = {f.index: f for f in files}
        self.units, self.encoding, self.text_columns, self.unit_size = units, encoding, text_columns, unit_size

    def get_name(self) -> str:
        return "RadbatchUnits"

    def estimate_inmemory_data_size(self) -> int | None:
        total = sum(f.rows or 0 for f in self.files.values())
        if not total:
            return None
        return int(sum(self.files[u.file_index].size * u.rows / total for u in self.units)) or None

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context=None) -> list[ReadTask]:
        by_file: dict[int, list[UnitRef]] = {}
        for u in self.units:
            by_file.setdefault(u.file_index, []).append(u)
        pending_rows = sum(u.rows for u in self.units)
        target = max(self.unit_size, -(-pending_rows // max(1, parallelism)))
        tasks = []
        for index, units in sorted(by_file.items()):
            f = self.files[index]
            for group in (self._parquet_groups(f, units, target) if f.kind == "parquet" else [units]):
                tasks.append(self._task(f, group))
        return tasks

    @staticmethod
    def _parquet_groups(f: InputFile, units: list[UnitRef], target: int) -> list[list[UnitRef]]:
        """Consecutive units, at least `target` rows a task. A task starts only in another row group than the
        task before it started in, so a row group is read by at most two tasks (a unit may span two row groups),
        and a one-row-group file is one task (its units become separate blocks downstream)."""
        import bisect

        import pyarrow.parquet as pq
        meta = pq.ParquetFile(f.path).metadata
        starts, first = [], 0
        for i in range(meta.num_row_groups):
            starts.append(first)
            first += meta.row_group(i).num_rows
        group_of = lambda row: bisect.bisect_right(starts, row) - 1  # noqa: E731
        groups: list[list[UnitRef]] = [[]]
        rows = 0   # in groups[-1]
        for u in sorted(units, key=lambda u: u.start):
            if rows >= target and group_of(u.start) != group_of(groups[-1][0].start):
                groups.append([])
                rows = 0
            groups[-1].append(u)
            rows += u.rows
        return groups

    def _task(self, f: InputFile, units: list[UnitRef]) -> ReadTask:
        encoding, text_columns, unit_size = self.encoding, self.text_columns, self.unit_size

        def read():
            return (_unit_row(f, u, table) for u, table in unit_tables(f, units, encoding, text_columns, unit_size))
        rows = len(units)
        size = int(f.size * sum(u.rows for u in units) / f.rows) if f.rows else None
        return ReadTask(read, BlockMetadata(num_rows=rows, size_bytes=size, input_files=[f.path], exec_stats=None),
                        schema=UNIT_SCHEMA)


@dataclass(frozen=True)
class UnitJob:
    """What the actor needs besides the engines to turn a unit into its part table (as the driver would)."""

    columns: object
    heads: list
    head_models: dict
    profiles: dict
    keep: list
    chexpert_numeric: bool


class UnitAnnotator:
    """The Ray Data actor: builds its engines once, then annotates whole units (one dataset row each)."""

    def __init__(self, spec, needed: set[str], job: UnitJob):
        import ray
        from .engine import build_engines
        self.job = job
        try:
            self.engines = build_engines(spec, needed) if needed else {}
        except Exception as exc:  # never the traceback of a report; executor_ray names the node
            raise RuntimeError(f"could not load its model(s): {type(exc).__name__}: {exc}") from None
        ctx = ray.get_runtime_context()
        self.name = f"{ctx.get_node_id()}/{os.getpid()}"

    def __call__(self, batch: pa.Table) -> pa.Table:
        from .engine import run_unit
        from .pool import crash_if_asked
        from .rows import assemble, prepare
        job, out = self.job, []
        for row in batch.to_pylist():
            crash_if_asked(row["unit"])
            priors = {int(k): v for k, v in json.loads(row["priors"]).items()}
            work = prepare(row["file_index"], row["source_file"], row["start_row"], from_ipc(row["data"]),
                           job.columns, job.heads, job.head_models, job.profiles, priors)
            completions, failure = [], ""
            if job.heads:   # as the local pool: an engine exception fails the unit's heads, not the run
                try:
                    completions = run_unit(self.engines, work.requests)
                except Exception as exc:
                    completions, failure = None, f"engine error: {type(exc).__name__}: {exc}"
            table = assemble(work, job.heads, completions, failure, job.keep, job.head_models, job.chexpert_numeric)
            out.append({"unit": row["unit"], "file_index": row["file_index"], "part": to_ipc(table),
                        "annotator": self.name})
        return pa.Table.from_pylist(out, schema=RESULT_SCHEMA)
