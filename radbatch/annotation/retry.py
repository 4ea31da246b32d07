"""--retry-errors: reopen a finished output, keeping every unit without a failed head as a part.

The units holding a row whose head errored or was truncated are then recomputed whole (units are always
decoded whole, so results stay independent of how the run was split).

Memory stays bounded whatever the output's size: the output is read twice in record batches, first only the
row identity and status columns (to find the failed units), then every column (to write the kept rows back as
parts of about PART_ROWS rows, each holding whole units). Only the set of failed units is held throughout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from radbatch.archive import storage

from .output import RunStore

PART_ROWS = 16_384    # rows per part written back: finalize reads a part whole, so parts stay small
BATCH_ROWS = 8_192    # rows read at a time


def reopen_with_errors_removed(store: RunStore, plan) -> int:
    """Write the kept units of each final file back as parts; returns the number of failed units."""
    index = {f.path: f.index for f in plan.files}
    # Units already back in parts (a reopen that was interrupted, then rerun) are not written twice.
    present: dict[int, list[int]] = {}
    for unit in store.done_units():
        f, start = unit.split(":")
        present.setdefault(int(f), []).append(int(start))
    bad_units = 0
    for path in store.final_paths(plan.files):
        if not storage.exists(path):   # a local file or an s3:// object
            continue
        status_cols = [h.col("status") for h in plan.heads]
        bad = _failed_units(path, status_cols, index, plan.opts.unit_size)
        bad_units += sum(len(v) for v in bad.values())
        skip = {f: np.union1d(bad.get(f, np.array([], np.int64)), np.array(present.get(f, []), np.int64))
                for f in set(bad) | set(present)}
        _write_kept(store, path, skip, index, plan.opts.unit_size)
    return bad_units


def _file_indexes(names: pa.Array, index: dict[str, int]) -> np.ndarray:
    uniq = pc.unique(names).to_pylist()
    positions = pc.index_in(names, value_set=pa.array(uniq, names.type)).to_numpy()
    return np.array([index[u] for u in uniq], dtype=np.int64)[positions]


def _failed_units(path: Path, status_cols: list[str], index: dict[str, int], size: int) -> dict[int, np.ndarray]:
    """file index -> sorted first rows of the units holding a row with an errored or truncated head."""
    pf = pq.ParquetFile(storage.open_input(path))
    present = [c for c in status_cols if c in pf.schema_arrow.names]
    found: dict[int, set[int]] = {}
    if present:
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=["source_file", "source_row", *present]):
            failed = np.zeros(batch.num_rows, dtype=bool)
            for c in present:
                failed |= pc.fill_null(pc.is_in(batch.column(c), value_set=pa.array(["error", "truncated"])),
                                       False).to_numpy(zero_copy_only=False)
            if failed.any():
                files = _file_indexes(batch.column("source_file"), index)[failed]
                units = (batch.column("source_row").to_numpy()[failed] // size) * size
                for f, u in zip(files.tolist(), units.tolist()):
                    found.setdefault(f, set()).add(u)
    return {f: np.array(sorted(us), dtype=np.int64) for f, us in found.items()}


def _write_kept(store: RunStore, path: Path, bad: dict[int, np.ndarray], index: dict[str, int], size: int) -> None:
    """Stream the final file's rows outside the `bad` units back into parts of whole units, with the part
    layout of a normal run (`_source_index` before `source_file`, no `id_duplicated`, the declared types)."""
    pf = pq.ParquetFile(storage.open_input(path))
    names = [c for c in pf.schema_arrow.names if c != "id_duplicated"]
    order = list(names)
    order.insert(order.index("source_file"), "_source_index")
    buf: list[pa.Table] = []
    buf_rows, current = 0, None

    def flush(everything: bool) -> None:
        """Write parts of PART_ROWS rows rounded up to a whole unit; the rest waits for more rows, unless
        `everything` (the file's rows are all in)."""
        nonlocal buf, buf_rows
        while buf_rows and (everything or buf_rows >= PART_ROWS):
            table = pa.concat_tables(buf)
            units = (table.column("source_row").to_numpy() // size) * size
            cut = int(np.searchsorted(units, units[min(PART_ROWS, len(units)) - 1], side="right"))
            if cut == len(units) and not everything:
                return   # the last unit may go on in the next batch
            ids = [f"{current}:{u}" for u in np.unique(units[:cut]).tolist()]
            store.write_part(current, table.slice(0, cut), ids)
            rest = table.slice(cut)
            buf, buf_rows = ([rest] if rest.num_rows else []), rest.num_rows

    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=names):
        table = pa.Table.from_batches([batch]).replace_schema_metadata(None)
        files = _file_indexes(table.column("source_file"), index)
        units = (table.column("source_row").to_numpy() // size) * size
        keep = np.ones(len(units), dtype=bool)
        for f, starts in bad.items():
            keep &= ~((files == f) & np.isin(units, starts))
        table = table.append_column("_source_index", pa.array(files, pa.int32())).select(order)
        table, files = table.filter(pa.array(keep)), files[keep]
        # A batch holds one input file, or the end of one and the start of the next (the output is sorted).
        present = np.unique(files).tolist()
        for f in present:
            if f != current:
                flush(True)
                current = f
            mine = table.filter(pa.array(files == f)) if len(present) > 1 else table
            buf.append(mine)
            buf_rows += mine.num_rows
            flush(False)
    flush(True)
