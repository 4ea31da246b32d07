"""Pick the rows of an annotated file a person should check first, least confident first.

A row's confidence is the head's `<task>__confidence` (for abnormality_detection the lowest of its label
confidences). Rows where the head errored or was truncated have no answer and come first (confidence 0);
not_applicable rows and rows with no confidence at all are not queued.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from radbatch.errors import InputError

from .answers import ReviewHead

KEYS = ("source_file", "source_row")


@dataclass(frozen=True)
class QueueOptions:
    task: str
    below: float | None = None         # queue rows whose confidence is below this
    lowest: int | None = None          # or the N least confident rows
    text_column: str = "report_text"
    id_column: str = "report_id"
    temperature: float | None = None   # from a calibration file: rank and threshold calibrated confidences


@dataclass
class Item:
    rank: int
    source_file: str
    source_row: int
    report_id: str | None
    text: str
    status: str                        # the head's status: ok, error, truncated
    confidence: float | None           # None: no answer (error / truncated)
    model: dict[str, str | None]       # control name -> the model's answer (choice text), None if not a choice
    label_confidence: dict[str, float | None]
    model_name: str | None


def read_rows(path: Path, head: ReviewHead, opts: QueueOptions) -> pa.Table:
    """Keys, the head's outputs and confidences; the report text is read later, for the queued rows only."""
    if not Path(path).is_file():
        raise InputError(f"annotated file '{path}' not found. Give the Parquet file `radbatch annotate` wrote.")
    try:
        names = pq.read_schema(path).names
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read '{path}' as Parquet ({type(exc).__name__}). Give the Parquet file "
                         "`radbatch annotate` wrote.") from exc
    missing = [c for c in (*KEYS, opts.text_column) if c not in names]
    if missing:
        hint = " Use --text-column." if opts.text_column in missing else " (columns radbatch annotate writes)"
        raise InputError(f"column(s) {', '.join(missing)} not found in '{path}'.{hint}")
    conf = [c.confidence for c in head.controls]
    if not any(c in names for c in conf):
        raise InputError(f"'{path}' has no confidence column for {head.task} (expected {conf[0]}"
                         f"{' ...' if len(conf) > 1 else ''}). Annotate with a radbatch that writes confidences.")
    wanted = [*KEYS, opts.id_column, f"{head.task}__status", f"{head.task}__model",
              *(f"{head.task}__{f}" for f in head.fields), *conf]
    try:
        return pq.read_table(path, columns=[c for c in dict.fromkeys(wanted) if c in names])
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read '{path}' as Parquet ({type(exc).__name__}).") from exc


def read_texts(path: Path, column: str, rows: list[int]) -> list[str]:
    try:
        texts = pq.read_table(path, columns=[column]).column(column)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read column {column} of '{path}' ({type(exc).__name__}).") from exc
    return [t or "" for t in texts.take(pa.array(rows, pa.int64())).to_pylist()]


def _calibrated(p: float | None, temperature: float | None) -> float | None:
    if p is None or temperature is None:
        return p
    p = min(max(p, 1e-6), 1 - 1e-6)
    return 1.0 / (1.0 + math.exp(-math.log(p / (1 - p)) / temperature))


def select_items(table: pa.Table, head: ReviewHead, opts: QueueOptions, path: Path) -> list[Item]:
    if (opts.below is None) == (opts.lowest is None):
        raise InputError("give exactly one of --below P or --lowest N.")
    cols = {name: table.column(name).to_pylist() for name in table.column_names}
    n = table.num_rows
    status = cols.get(f"{head.task}__status", ["ok"] * n)
    candidates = []
    for i in range(n):
        if status[i] in ("error", "truncated"):
            conf, labels = None, {}
        elif status[i] == "ok":
            labels = {c.name: _calibrated(cols.get(c.confidence, [None] * n)[i], opts.temperature)
                      for c in head.controls}
            known = [v for v in labels.values() if v is not None]
            if not known:
                continue
            conf = min(known)
        else:
            continue  # not_applicable, null
        candidates.append((0.0 if conf is None else conf, i, conf, labels))
    candidates.sort(key=lambda c: (c[0], c[1]))
    if opts.below is not None:
        chosen = [c for c in candidates if c[0] < opts.below]
    else:
        chosen = candidates[:opts.lowest]
    items = []
    texts = read_texts(path, opts.text_column, [c[1] for c in chosen])
    for rank, ((_, i, conf, labels), text) in enumerate(zip(chosen, texts), 1):
        outputs = {f: cols.get(f"{head.task}__{f}", [None] * n)[i] for f in head.fields}
        model = {c.name: (c.answer_of(outputs) if status[i] == "ok" else None) for c in head.controls}
        items.append(Item(rank, cols["source_file"][i], int(cols["source_row"][i]),
                          None if cols.get(opts.id_column) is None else _str(cols[opts.id_column][i]),
                          text, status[i], conf, model, labels,
                          (cols.get(f"{head.task}__model") or [None] * n)[i]))
    return items


def _str(value) -> str | None:
    return None if value is None else str(value)
