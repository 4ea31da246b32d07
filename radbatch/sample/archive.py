"""Write a synthetic labelled archive to Parquet or CSV, streaming, deterministic, on all cores.

Patients are generated in blocks of consecutive patient indices, in worker processes when the archive
is large; blocks come back in order and are cut into fixed-size row groups, so the bytes written depend
on (rows, seed, split, gold, messy) only, never on the worker count.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from radbatch.sample.cohort import seed_key
from radbatch.sample.reports import patient_rows
from radbatch.sample.schema import NESTED, schema, to_batch

ROW_GROUP = 50_000  # rows per Parquet row group and per CSV write
BLOCK_PATIENTS = 256  # patients per unit of work (about 340 rows)
FORMATS = ("parquet", "csv")
SPLITS = ("train", "dev", "test", "all")
_PARALLEL_FROM = 20_000  # rows; below this, process start-up costs more than it saves


@dataclass(frozen=True)
class SampleOptions:
    rows: int
    output: Path
    seed: int = 0
    format: str | None = None  # None: from the output suffix
    split: str = "all"
    gold: bool = True
    messy: bool = False
    workers: int | None = None  # None: all cores for large archives


@dataclass(frozen=True)
class ArchiveSummary:
    path: Path
    format: str
    rows: int
    columns: int


def output_format(options: SampleOptions) -> str:
    """The format to write, from --format or the output suffix; ValueError says how to fix it."""
    if options.format is not None:
        if options.format not in FORMATS:
            raise ValueError(f"unknown format {options.format!r}; use one of: {', '.join(FORMATS)}")
        return options.format
    suffix = options.output.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(f"cannot tell the format of {options.output.name!r} from its suffix; name it .parquet or .csv, or pass --format")
    return suffix


def iter_tables(options: SampleOptions) -> Iterator[pa.Table]:
    """Tables of exactly ROW_GROUP rows (the last one shorter), `options.rows` in all."""
    pending: list[pa.Table] = []
    held = 0
    left = options.rows
    for table in _blocks(options):
        table = table.slice(0, left)
        pending.append(table)
        held += table.num_rows
        left -= table.num_rows
        while held >= ROW_GROUP or (left == 0 and held):
            joined = pa.concat_tables(pending)
            # one contiguous chunk per row group: page layout then cannot depend on block boundaries
            yield joined.slice(0, ROW_GROUP).combine_chunks()
            rest = joined.slice(ROW_GROUP)
            pending, held = ([rest] if rest.num_rows else []), rest.num_rows
        if left == 0:
            return


def _blocks(options: SampleOptions) -> Iterator[pa.Table]:
    key = seed_key(options.seed)
    want = None if options.split == "all" else options.split
    args = (key, want, options.gold, options.messy, BLOCK_PATIENTS)
    if options.workers is None:  # auto: parallel only where it pays
        workers = (os.cpu_count() or 1) if options.rows >= _PARALLEL_FROM else 1
    else:
        workers = options.workers
    if workers <= 1:
        return (_block(block, *args) for block in itertools.count())
    return _parallel_blocks(workers, args)


def _parallel_blocks(workers: int, args: tuple) -> Iterator[pa.Table]:
    with ProcessPoolExecutor(workers) as pool:
        in_flight: deque = deque()
        blocks = itertools.count()
        try:
            while True:
                while len(in_flight) < 2 * workers:  # bounded read-ahead keeps memory flat
                    in_flight.append(pool.submit(_block, next(blocks), *args))
                yield in_flight.popleft().result()
        finally:
            for future in in_flight:
                future.cancel()


def _block(block: int, key: int, want: str | None, gold: bool, messy: bool, size: int = BLOCK_PATIENTS) -> pa.Table:
    """Rows of patients [block * size, (block + 1) * size) as one table. Each patient's rows depend on
    (seed, patient index) only, and iter_tables re-cuts blocks into fixed row groups, so neither the block
    size nor the worker count shows in the output."""
    rows: list[dict] = []
    # generation makes no reference cycles, so the cyclic collector would only scan, millions of times;
    # it stays off through the conversion as well (a same-load A/B measured no gain from that part alone)
    gc.disable()
    try:
        for index in range(block * size, (block + 1) * size):
            rows.extend(patient_rows(key, index, want, gold, messy))
        batch = to_batch(rows, gold, key)
        del rows
    finally:
        gc.enable()
    return pa.Table.from_batches([batch])


def sample_table(rows: int, seed: int = 0, split: str = "all", gold: bool = True, messy: bool = False) -> pa.Table:
    """An archive in memory, in this process (tests, notebooks); same rows as write_archive."""
    options = SampleOptions(rows=rows, output=Path("unused"), seed=seed, split=split, gold=gold, messy=messy, workers=1)
    return pa.concat_tables(iter_tables(options))


def write_archive(options: SampleOptions) -> ArchiveSummary:
    """Generate `options.rows` reports and write them to `options.output`."""
    if options.rows < 1:
        raise ValueError(f"--rows must be at least 1, got {options.rows}")
    if options.split not in SPLITS:
        raise ValueError(f"unknown split {options.split!r}; use one of: {', '.join(SPLITS)}")
    fmt = output_format(options)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    target = schema(options.gold)
    tables = iter_tables(options)
    if fmt == "parquet":
        _write_parquet(tables, options.output, target)
    else:
        _write_csv(tables, options.output, target)
    return ArchiveSummary(options.output, fmt, options.rows, len(target))


def _write_parquet(tables: Iterator[pa.Table], path: Path, target: pa.Schema) -> None:
    import pyarrow.parquet as pq

    # dictionary-encode only the few-valued columns; report text would only overflow the dictionary
    dictionary = ["modality", "report_type", "split", *[n for n in target.names if n.startswith("gold__") and n not in NESTED]]
    with pq.ParquetWriter(path, target, compression="zstd", use_dictionary=dictionary, write_statistics=False) as writer:
        for table in tables:
            writer.write_table(table, row_group_size=ROW_GROUP)


def _write_csv(tables: Iterator[pa.Table], path: Path, target: pa.Schema) -> None:
    import pyarrow.csv as pacsv

    flat = pa.schema([pa.field(f.name, pa.string()) if f.name in NESTED else f for f in target])
    with pacsv.CSVWriter(path, flat) as writer:
        for table in tables:
            for batch in table.to_batches():
                writer.write_batch(_flatten(batch, flat))


def _flatten(batch: pa.RecordBatch, flat: pa.Schema) -> pa.RecordBatch:
    """List columns as JSON text: CSV has no nested types."""
    arrays = []
    for f in flat:
        column = batch.column(f.name)
        if f.name in NESTED:
            values = [None if v is None else json.dumps(v, ensure_ascii=False) for v in column.to_pylist()]
            column = pa.array(values, pa.string())
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=flat)
