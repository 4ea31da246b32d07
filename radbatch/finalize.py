"""Finalise parts into the output: sorted by row identity, duplicate ids flagged, provenance in metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import InputError, StorageError
from .output import META_KEY, RunStore, _fsync_dir, remove_quietly, storage_error

FINAL_CHUNK_ROWS = 50_000  # rows buffered per write: memory stays flat however big the archive


def _frames(store: RunStore, files):
    import polars as pl
    out = []
    for f in files:
        parts = store.parts_of(f.index)
        if parts:
            out.append((f, pl.scan_parquet(parts).sort("source_row")))
    return out


def _duplicated_ids(frames, id_column: str | None):
    import polars as pl
    if not id_column or not frames:
        return pl.Series("id", [], dtype=pl.String)
    ids = pl.concat([lf.select(pl.col(id_column).cast(pl.String)) for _, lf in frames])
    dups = ids.drop_nulls().group_by(id_column).len().filter(pl.col("len") > 1).collect()
    return dups[id_column]


def _target_schema(lf, part_paths: list[Path]):
    """The declared Arrow types of the parts (polars would widen string to large_string), in output order."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    parts = pa.unify_schemas([pq.read_schema(p) for p in part_paths], promote_options="permissive")
    fields = []
    for name in lf.collect_schema().names():
        idx = parts.get_field_index(name)
        fields.append(parts.field(idx) if idx >= 0 else pa.field(name, pa.bool_()))  # id_duplicated
    return pa.schema(fields)


def _sink(lf, path: Path, meta: dict, part_paths: list[Path]) -> None:
    """Stream the sorted frame into one Parquet file with the parts' declared types."""
    import pyarrow.parquet as pq
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        schema = _target_schema(lf, part_paths).with_metadata({META_KEY: json.dumps(meta, sort_keys=True)})
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for batch in lf.collect_batches(chunk_size=FINAL_CHUNK_ROWS):
                writer.write_table(batch.to_arrow().cast(schema))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except Exception as exc:  # polars wraps OS errors in its own types
        remove_quietly(tmp)
        raise storage_error("write the final output", path, exc) from None


def finalize(store: RunStore, files, meta: dict, id_column: str | None, expected_rows: int) -> list[Path]:
    """Write the final file(s) and check that every row is there exactly once."""
    import polars as pl
    if expected_rows == 0:
        raise InputError("the input has no data rows (a CSV file with only a header?): nothing to annotate")
    frames = _frames(store, files)
    dups = _duplicated_ids(frames, id_column)
    written: list[Path] = []

    def finish(lf):
        if id_column:
            lf = lf.with_columns(id_duplicated=pl.col(id_column).cast(pl.String).is_in(dups.implode())
                                 .fill_null(False))
        return lf.drop("_source_index")

    if store.dir_mode:
        store.output.mkdir(parents=True, exist_ok=True)
        for f, lf in frames:
            path = store.final_paths([f])[0]
            _sink(finish(lf), path, meta, store.parts_of(f.index))
            written.append(path)
    else:
        if not frames:
            raise StorageError("no rows to write (the input had no rows within --limit)")
        lf = pl.concat([lf for _, lf in frames], how="diagonal_relaxed")
        _sink(finish(lf), store.output, meta, [p for f, _ in frames for p in store.parts_of(f.index)])
        written.append(store.output)
    _verify(written, expected_rows)
    return written


def _verify(paths: list[Path], expected_rows: int) -> None:
    import polars as pl
    lf = pl.concat([pl.scan_parquet(p).select("source_file", "source_row") for p in paths])
    stats = lf.select(pl.len().alias("n"), pl.struct("source_file", "source_row").n_unique().alias("u")).collect()
    n, unique = stats["n"][0], stats["u"][0]
    if n != expected_rows or unique != n:
        raise StorageError(f"output check failed: {n} rows written ({unique} distinct), {expected_rows} expected. "
                           "Rerun with --restart.")
