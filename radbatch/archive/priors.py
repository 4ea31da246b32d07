"""Prior reports for the temporal head: the previous report of the same patient (and modality), by date.

Bounded memory on big archives: one streaming pass writes only (file, row, patient, modality, date, text) to a
Parquet file in the work directory; polars sorts it (spilling to its streaming engine), pairs each report with
the one before it, and writes (file, row, prior_text) to `priors.parquet`, sorted by row identity, which
`PriorCursor` reads alongside the work units in one forward pass (a few thousand priors in memory at a time).
Ties on date are broken by row identity; rows whose date cannot be parsed have no prior and are no one's prior.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .private_files import FILE_MODE, fsync_file, move_into_place, open_private
from .reading import ColumnOptions, decode, iter_batches


def build_priors(files, cols: ColumnOptions, encoding: str, work: Path, limit: int | None) -> Path:
    import polars as pl
    stage, out = work / "priors-input.parquet", work / "priors.parquet"
    if out.exists():
        return out
    schema = pa.schema([("file", pa.int32()), ("row", pa.int64()), ("patient", pa.string()),
                        ("modality", pa.string()), ("date", pa.string()), ("text", pa.string())])
    remaining = limit
    with open_private(stage) as fh, pq.ParquetWriter(fh, schema) as writer:   # report text: owner-only
        for f in files:
            row = 0
            for batch in iter_batches(f, encoding, cols.text_columns()):
                if remaining is not None:
                    if remaining <= 0:
                        break
                    batch = batch.slice(0, remaining)
                    remaining -= batch.num_rows
                n = batch.num_rows
                get = lambda c: batch.column(c).to_pylist() if c else [None] * n  # noqa: E731
                texts = [decode(v)[0] for v in get(cols.text)]
                writer.write_table(pa.table({
                    "file": pa.array([f.index] * n, pa.int32()), "row": pa.array(range(row, row + n), pa.int64()),
                    "patient": pa.array([None if v is None else str(v) for v in get(cols.patient)], pa.string()),
                    "modality": pa.array([None if v is None else str(v) for v in get(cols.modality)], pa.string()),
                    "date": pa.array([None if v is None else str(v) for v in get(cols.date)], pa.string()),
                    "text": pa.array(texts, pa.string())}, schema=schema))
                row += n
    keys = ["patient", "modality"]
    lf = (pl.scan_parquet(stage)
          .with_columns(when=pl.col("date").str.to_datetime(strict=False))
          .filter(pl.col("patient").is_not_null() & pl.col("when").is_not_null())
          .sort(keys + ["when", "file", "row"], nulls_last=True))
    same = pl.all_horizontal([pl.col(k).eq_missing(pl.col(k).shift(1)) for k in keys])
    lf = (lf.with_columns(prior=pl.when(same).then(pl.col("text").shift(1)))
          .filter(pl.col("prior").is_not_null()).select("file", "row", "prior").sort("file", "row"))
    tmp = work / ".priors.tmp"
    open_private(tmp).close()   # polars truncates the 0600 file it finds
    lf.sink_parquet(tmp)
    tmp.chmod(FILE_MODE)
    fsync_file(tmp)             # the resume logic trusts an existing priors.parquet: fsync, rename, fsync folder
    move_into_place(tmp, out)
    stage.unlink(missing_ok=True)
    return out


def priors_for(path: Path | None, file_index: int) -> dict[int, str]:
    if path is None:
        return {}
    import polars as pl
    df = pl.scan_parquet(path).filter(pl.col("file") == file_index).select("row", "prior").collect()
    return dict(zip(df["row"].to_list(), df["prior"].to_list()))


class PriorCursor:
    """Priors for work units requested in input order, read from `priors.parquet` in one forward pass."""

    def __init__(self, path: Path | None, batch_rows: int = 4096):
        self._batches = pq.ParquetFile(path).iter_batches(batch_size=batch_rows) if path else iter(())
        self._keys: list[tuple[int, int]] = []
        self._texts: list[str] = []
        self._pos = 0

    def _head(self) -> tuple[int, int] | None:
        while self._pos >= len(self._keys):
            batch = next(self._batches, None)
            if batch is None:
                return None
            cols = batch.to_pydict()
            self._keys, self._texts, self._pos = list(zip(cols["file"], cols["row"])), cols["prior"], 0
        return self._keys[self._pos]

    def take(self, file_index: int, start: int, n: int) -> dict[int, str]:
        """Priors of rows start..start+n-1 of one file; earlier rows are skipped for good."""
        out: dict[int, str] = {}
        while (key := self._head()) is not None and key < (file_index, start + n):
            if key >= (file_index, start):
                out[key[1]] = self._texts[self._pos]
            self._pos += 1
        return out
