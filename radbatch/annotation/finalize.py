"""Finalise parts into the output: sorted by row identity, duplicate ids flagged, provenance in metadata.

Memory stays bounded whatever the archive size: the units of each input file are written out in row order, each
read from its part (parts hold a few hundred rows; a part is dropped once its last unit is out), instead of
sorting all rows at once; only the id column is read whole, to find duplicated ids.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from radbatch.archive import storage
from radbatch.archive.private_files import (
    move_into_place,
    open_private,
    private_dirs,
    remove_quietly,
)
from radbatch.errors import InputError, StorageError

from .output import META_KEY, RunStore, remove_output, storage_error

FINAL_CHUNK_ROWS = 50_000  # rows buffered per write: memory stays flat however big the archive


def _units_by_file(done: dict[str, Path]) -> dict[int, list[tuple[int, Path]]]:
    """file index -> (first row, part) of its finished units, in row order (one pass over all units)."""
    by_file: dict[int, list[tuple[int, Path]]] = {}
    for unit, part in done.items():
        index, start = unit.split(":")
        by_file.setdefault(int(index), []).append((int(start), part))
    return {index: sorted(units) for index, units in by_file.items()}


def _unit_tables(units: list[tuple[int, Path]]) -> Iterator[pa.Table]:
    """Each unit's rows in row order. A part is read once and kept only until its last unit has gone out;
    units are dispatched in input order, so few parts are open at a time whatever the archive size."""
    left = Counter(part for _, part in units)
    open_parts: dict[Path, tuple[pa.Table, np.ndarray]] = {}
    for i, (start, part) in enumerate(units):
        if part not in open_parts:
            table = pq.read_table(part).sort_by("source_row")
            open_parts[part] = (table, table.column("source_row").to_numpy())
        table, rows = open_parts[part]
        end = units[i + 1][0] if i + 1 < len(units) else np.iinfo(np.int64).max
        lo, hi = np.searchsorted(rows, [start, end])
        yield table.slice(lo, hi - lo)
        left[part] -= 1
        if not left[part]:
            del open_parts[part]


def _duplicated_ids(parts: list[Path], id_column: str | None) -> pa.Array | None:
    """The ids that occur more than once in the whole output (only the id column is read)."""
    import polars as pl
    if not id_column or not parts:
        return None
    columns = [pc.cast(pq.read_table(p, columns=[id_column]).column(0), pa.string()) for p in parts]
    ids = pl.from_arrow(pa.table({id_column: pa.chunked_array(columns, pa.string())}))
    dups = ids.drop_nulls().group_by(id_column).len().filter(pl.col("len") > 1)
    return dups[id_column].to_arrow().cast(pa.string())


def _target_schema(parts: list[Path], id_column: str | None, meta: dict) -> pa.Schema:
    """The parts' declared Arrow types in first-appearance order, without the internal file index."""
    schema = pa.unify_schemas([pq.read_schema(p) for p in parts], promote_options="permissive")
    fields = [f for f in schema if f.name not in ("_source_index", "id_duplicated")]
    if id_column:
        fields.append(pa.field("id_duplicated", pa.bool_()))
    return pa.schema(fields).with_metadata({META_KEY: json.dumps(meta, sort_keys=True)})


def _conform(table: pa.Table, schema: pa.Schema, id_column: str | None, dups: pa.Array | None) -> pa.Table:
    if id_column:
        ids = pc.cast(table.column(id_column), pa.string())
        table = table.drop_columns([c for c in ("id_duplicated",) if c in table.column_names])
        table = table.append_column("id_duplicated", pc.fill_null(pc.is_in(ids, value_set=dups), False))
    columns = [table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema.remove_metadata()).cast(schema.remove_metadata())


class _Checked:
    """Counts the rows going out and checks they arrive in strictly increasing row identity."""

    def __init__(self):
        self.rows, self.last = 0, (-1, -1)

    def see(self, file_index: int, table: pa.Table) -> None:
        if not table.num_rows:
            return
        rows = table.column("source_row").to_numpy()
        first = (file_index, int(rows[0]))
        if first <= self.last or (len(rows) > 1 and not (np.diff(rows) > 0).all()):
            raise StorageError(f"output check failed: row {first} of input file {file_index} is out of order or "
                               "repeated in the finished parts. Rerun with --restart.")
        self.rows, self.last = self.rows + len(rows), (file_index, int(rows[-1]))


def _sink(path: Path | str, schema: pa.Schema, tables: Iterator[tuple[int, pa.Table]], conform, check: _Checked,
          expected_rows: int | None = None, tmp_dir: Path | None = None) -> None:
    """Stream unit tables into one Parquet file (temp file, fsync, rename), FINAL_CHUNK_ROWS per row group.
    The temp file (0600) lives in the work directory, never beside the output where a crash would leave it.
    An s3:// output is uploaded from the finished, checked temp file as one object (storage.upload)."""
    remote = storage.is_uri(path)
    name = Path(storage.split(path)[1]).name if remote else path.name
    tmp = (tmp_dir or path.parent) / f".final-{name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open_private(tmp) as fh, pq.ParquetWriter(fh, schema, compression="zstd") as writer:
            buffer, buffered, current = [], 0, None

            def flush():   # conform a whole chunk at once: per 8-row unit it cost more than the write
                if buffer:
                    writer.write_table(conform(pa.concat_tables(buffer, promote_options="permissive")),
                                       row_group_size=FINAL_CHUNK_ROWS)
                buffer.clear()

            for file_index, table in tables:
                check.see(file_index, table)
                if file_index != current or buffered >= FINAL_CHUNK_ROWS:   # a chunk holds one file's schema
                    flush()
                    buffered, current = 0, file_index
                buffer.append(table)
                buffered += table.num_rows
            flush()
        if expected_rows is not None:
            _expect(check, expected_rows)   # before the rename: a short output never becomes the final file
        if remote:
            storage.upload(tmp, path)
            remove_quietly(tmp)
            return
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        move_into_place(tmp, path)
    except StorageError:
        remove_quietly(tmp)
        raise
    except (OSError, pa.ArrowException) as exc:
        remove_quietly(tmp)
        raise storage_error("write the final output", path, exc) from None


def finalize(store: RunStore, files, meta: dict, id_column: str | None, expected_rows: int) -> list[Path]:
    """Write the final file(s), sorted by row identity, and check that every row is there exactly once."""
    if expected_rows == 0:
        raise InputError("the input has no data rows (a CSV file with only a header?): nothing to annotate")
    found = _units_by_file(store.done_units())
    units = {f.index: found.get(f.index, []) for f in files}
    parts = sorted({p for us in units.values() for _, p in us})
    if not parts:
        raise StorageError("no rows to write (the input had no rows within --limit)")
    dups = _duplicated_ids(parts, id_column)
    check, written = _Checked(), []

    def stream(fs):
        for f in fs:
            for table in _unit_tables(units[f.index]):
                yield f.index, table

    if store.dir_mode:
        if not store.remote:
            private_dirs(store.output)
        for f in files:
            own = sorted({p for _, p in units[f.index]})
            if own:
                schema = _target_schema(own, id_column, meta)
                path = store.final_paths([f])[0]
                _sink(path, schema, stream([f]), lambda t, s=schema: _conform(t, s, id_column, dups), check,
                      tmp_dir=store.work)
                written.append(path)
    else:
        schema = _target_schema(parts, id_column, meta)
        _sink(store.output, schema, stream(files), lambda t: _conform(t, schema, id_column, dups), check,
              expected_rows, tmp_dir=store.work)
        written.append(store.output)
    try:
        _expect(check, expected_rows)
    except StorageError:
        for path in written:
            remove_output(path)
        raise
    for old in store.stale_outputs(set(written)):   # an earlier run's files in a directory output or prefix
        try:
            remove_output(old)
        except OSError as exc:
            raise storage_error("remove an earlier run's output", old, exc) from None
    return written


def _expect(check: _Checked, expected_rows: int) -> None:
    if check.rows != expected_rows:
        raise StorageError(f"output check failed: {check.rows} rows written, {expected_rows} expected. "
                           "Rerun with --restart.")


