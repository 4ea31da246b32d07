"""Read the Parquet files and line predictions up with gold, counting every row that does not match.

Gold comes from `--gold FILE` or, without it, from the `gold__*` columns of the first predictions file.
A predictions file that holds the gold itself needs no join ("inline"). Otherwise rows are joined on
(source_file, source_row) when both files have them, else on an id column; keys must be unique on both
sides (a duplicated key would score a row twice), and rows without a partner are counted, never dropped
silently: gold rows with no prediction row are scored as wrong, prediction rows with no gold are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from .errors import EvalError
from .result import JoinReport
from .rows import GOLD_PREFIX, PRESENT, ROW_KEY
from .task_specs import task_ids

SOURCE_KEYS = ["source_file", "source_row"]
DEFAULT_ID = "report_id"


@dataclass
class GoldTable:
    path: Path
    frame: pl.DataFrame  # labelled rows only: ROW_KEY, join keys, gold columns
    all_columns: list[str]
    inline: bool         # the gold columns live in a predictions file


def read_parquet(path: Path, what: str, id_column: str | None) -> pl.DataFrame:
    """Only the columns evaluation uses: keys, statuses, head outputs and gold (never the report text)."""
    if not path.is_file():
        raise EvalError(f"{what} file '{path}' not found. Check the path (it must be a Parquet file).")
    try:
        names = pq.read_schema(path).names
        keys = set(SOURCE_KEYS) | {id_column or DEFAULT_ID, "status"}
        tasks = set(task_ids())
        wanted = [c for c in names if c in keys or c.startswith(GOLD_PREFIX) or c.split("__")[0] in tasks]
        return pl.read_parquet(path, columns=wanted)
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        raise EvalError(f"cannot read {what} file '{path}' as Parquet ({type(exc).__name__}). "
                        "radbatch eval reads the Parquet files written by `radbatch annotate`.") from exc


def gold_columns(frame: pl.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(GOLD_PREFIX)]


def gold_table(predictions: Path, pred_frame: pl.DataFrame, gold: Path | None, id_column: str | None) -> GoldTable:
    frame, path = (read_parquet(gold, "gold", id_column), gold) if gold else (pred_frame, predictions)
    columns = gold_columns(frame)
    if not columns:
        where = f"gold file '{gold}'" if gold else f"'{predictions}' (and no --gold file was given)"
        raise EvalError(f"no gold columns in {where}. Gold columns are named gold__<task>__<field>, e.g. "
                        "gold__n_staging__stage; add them or pass --gold FILE that has them.")
    frame = frame.with_row_index(ROW_KEY).filter(pl.any_horizontal([pl.col(c).is_not_null() for c in columns]))
    return GoldTable(path, frame, list(frame.columns), inline=gold is None)


def join(path: Path, pred: pl.DataFrame, gold: GoldTable, id_column: str | None) -> tuple[pl.DataFrame, JoinReport]:
    """`id_column` None: join on source keys when both files have them, else on report_id."""
    if gold.inline and path == gold.path:
        return _inline(path, pred, gold, id_column)
    ignored = gold_columns(pred)
    pred = pred.drop(ignored)  # one gold for every run: --gold, else the first predictions file's
    keys = _keys(path, pred, gold, id_column)
    for frame, where in ((gold.frame, gold.path), (pred, path)):
        _refuse_duplicates(frame, keys, where)
    g, p = _aligned_key_types(gold.frame.select([ROW_KEY] + keys + gold_columns(gold.frame)), pred, keys)
    joined = g.join(p.with_columns(pl.lit(True).alias(PRESENT)), on=keys, how="left", nulls_equal=False)
    joined = joined.with_columns(pl.col(PRESENT).fill_null(False))
    matched = int(joined[PRESENT].sum())
    report = JoinReport("+".join(keys) if keys == SOURCE_KEYS else f"id:{keys[0]}", str(path), str(gold.path),
                        pred.height, gold.frame.height, matched, gold.frame.height - matched, pred.height - matched,
                        _duplicates(pred, id_column or DEFAULT_ID) if keys == SOURCE_KEYS else 0)
    _notes(report)
    if ignored:
        report.notes.append(f"{len(ignored)} gold__ column(s) in this file were ignored: gold comes from '{gold.path}'.")
    return joined, report


def _inline(path: Path, pred: pl.DataFrame, gold: GoldTable, id_column: str | None) -> tuple[pl.DataFrame, JoinReport]:
    frame = gold.frame.with_columns(pl.lit(True).alias(PRESENT))
    dup_keys = SOURCE_KEYS if all(k in pred.columns for k in SOURCE_KEYS) else [id_column or DEFAULT_ID]
    report = JoinReport("inline", str(path), str(path), pred.height, frame.height, frame.height, 0,
                        pred.height - frame.height, _duplicates(pred, *dup_keys))
    _notes(report)
    return frame, report


def _keys(path: Path, pred: pl.DataFrame, gold: GoldTable, id_column: str | None) -> list[str]:
    if id_column is None and all(k in pred.columns and k in gold.all_columns for k in SOURCE_KEYS):
        return SOURCE_KEYS
    column = id_column or DEFAULT_ID
    missing = [str(where) for where, cols in ((path, pred.columns), (gold.path, gold.all_columns)) if column not in cols]
    if missing:
        why = "" if id_column else ", and the files do not both have source_file and source_row"
        raise EvalError(f"cannot join '{path}' with gold '{gold.path}': column '{column}' not found in "
                        f"{' and '.join(repr(m) for m in missing)}{why}. "
                        "Use --id-column NAME to name an id column both files have.")
    return [column]


def _refuse_duplicates(frame: pl.DataFrame, keys: list[str], where: Path) -> None:
    dup = frame.select(keys).with_row_index("__pos").drop_nulls().filter(pl.struct(keys).is_duplicated())
    if dup.height:
        groups = dup.select(keys).unique().height
        head = dup.row(0, named=True)
        first = dup.filter(pl.all_horizontal([pl.col(k) == head[k] for k in keys]))["__pos"].to_list()[:2]
        how = ("deduplicate the file or join on source_file and source_row" if len(keys) == 1
               else "the file repeats rows; rewrite it (a resumed run may have written a part twice)")
        raise EvalError(f"{' and '.join(keys)} must be unique to join, but {groups} value(s) occur more than once "
                        f"in '{where}' (the first at rows {first[0]} and {first[1]}, counting from 0). Fix: {how}.")


def _aligned_key_types(gold: pl.DataFrame, pred: pl.DataFrame, keys: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Compare ids as text when the two files store them with different types (e.g. int vs string)."""
    for key in keys:
        if gold.schema[key] != pred.schema[key]:
            cast = pl.Int64 if key == "source_row" else pl.String
            gold, pred = gold.with_columns(pl.col(key).cast(cast)), pred.with_columns(pl.col(key).cast(cast))
    return gold, pred


def _duplicates(frame: pl.DataFrame, *keys: str) -> int:
    """Rows whose key value occurs more than once (nulls ignored)."""
    if not all(k in frame.columns for k in keys):
        return 0
    return int(frame.select(list(keys)).drop_nulls().select(pl.struct(list(keys)).is_duplicated()).to_series().sum())


def _notes(report: JoinReport) -> None:
    if report.missing_predictions:
        report.notes.append(f"{report.missing_predictions} gold row(s) have no prediction row; they are scored "
                            "as wrong (missing).")
    if report.duplicate_ids:
        report.notes.append(f"{report.duplicate_ids} prediction row(s) share an id with another row "
                            "(not used for this join).")
