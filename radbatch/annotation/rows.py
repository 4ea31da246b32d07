"""One work unit's rows: inputs prepared for the heads, requests built, results assembled into a part table.

Every row of the unit comes out exactly once with a row status:
  ok          every head ok or not_applicable
  partial     at least one head ok and at least one error / truncated
  failed      no head ok, at least one error / truncated
  empty_text  null or blank report text (heads not_applicable)
  bad_text    report text is not valid UTF-8 (heads not_applicable; re-export or pass --encoding)
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from radbatch.archive.reading import ColumnOptions, decode
from radbatch.archive.sections import mentions_comparison, split_sections
from radbatch.engines.spec import Completion, Request
from radbatch.errors import RowError
from radbatch.heads.tasks import HeadInstance, RowInputs

CHEXPERT_NUMERIC = {"positive": 1, "negative": 0, "uncertain": -1}


@dataclass
class UnitWork:
    file_index: int
    source_file: str
    start_row: int
    table: pa.Table                  # the unit's input rows
    inputs: list[RowInputs | None]   # None: the row's text is empty or undecodable
    row_status: list[str | None]     # preset status for rows the heads cannot read
    requests: list[Request]
    skipped: dict                    # (row, slot) -> not_applicable reason

    @property
    def unit_id(self) -> str:
        return f"{self.file_index}:{self.start_row}"


@dataclass(frozen=True)
class RowJob:
    """What turns a unit's input rows into its part table besides the engines: the same arguments wherever a unit
    is prepared or assembled (the driver for the local pool, a Ray actor, the driver again for units Ray gave up
    on). Built once by the plan (job.plan_job) and shipped to Ray actors whole."""

    columns: ColumnOptions
    heads: list[HeadInstance]
    head_models: dict        # head key -> ModelSpec
    profiles: dict
    keep: list[str]
    chexpert_numeric: bool

    def prepare(self, file_index: int, source_file: str, start_row: int, table: pa.Table,
                priors: dict[int, str]) -> UnitWork:
        return prepare(file_index, source_file, start_row, table, self.columns, self.heads, self.head_models,
                       self.profiles, priors)

    def assemble(self, work: UnitWork, completions: list[Completion] | None, failure: str) -> pa.Table:
        return assemble(work, self.heads, completions, failure, self.keep, self.head_models, self.chexpert_numeric)


def _column(table: pa.Table, name: str | None) -> list:
    return table.column(name).to_pylist() if name else [None] * table.num_rows


def _text(value) -> str | None:
    text, ok = decode(value)
    return text if ok else None


def _empty_ids_missing(table: pa.Table, id_column: str | None) -> pa.Table:
    """An empty id (an empty CSV field, or "" in Parquet) is a missing id: null, never a duplicate of others."""
    if not id_column or id_column not in table.column_names:
        return table
    col = table.column(id_column)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return table
    import pyarrow.compute as pc
    empty = pc.equal(col, pa.scalar("", col.type))
    if not pc.any(empty).as_py():
        return table
    missing = pc.if_else(empty, pa.scalar(None, col.type), col)
    return table.set_column(table.column_names.index(id_column), table.schema.field(id_column), missing)


def prepare(file_index: int, source_file: str, start_row: int, table: pa.Table, cols: ColumnOptions,
            heads: list[HeadInstance], plan_models: dict, profiles: dict, priors: dict[int, str]) -> UnitWork:
    table = _empty_ids_missing(table, cols.id)
    texts = _column(table, cols.text)
    extra = {k: _column(table, getattr(cols, k)) for k in ("findings", "impression", "question", "hypothesis")}
    inputs, statuses, requests, skipped = [], [], [], {}
    for i, raw in enumerate(texts):
        text, ok = decode(raw)
        if not ok or not (text or "").strip():
            inputs.append(None)
            statuses.append("bad_text" if not ok else "empty_text")
            continue
        secs = split_sections(text)
        impression = _text(extra["impression"][i]) or secs.impression
        row = RowInputs(report=text, findings=_text(extra["findings"][i]) or secs.findings,
                        impression=impression, prior=priors.get(start_row + i),
                        hypothesis=_text(extra["hypothesis"][i]) if cols.hypothesis else impression,
                        question=_text(extra["question"][i]), has_comparison=mentions_comparison(text, secs))
        inputs.append(row)
        statuses.append(None)
        for head in heads:
            model = plan_models[head.key]
            prompt, reason = head.prompt(row, profiles[model.profile], model)
            if prompt is None:
                skipped[(i, head.key)] = reason
            else:
                requests.append(Request(i, head.key, head.recipe.id, model.name, prompt, head.recipe.max_tokens,
                                        bool(head.confidence_fields())))
    return UnitWork(file_index, source_file, start_row, table, inputs, statuses, requests, skipped)


def _head_result(head: HeadInstance, comp: Completion | None, failure: str) -> tuple[str, dict, str]:
    """(status, column values, error message) for one head on one row."""
    if comp is None:
        return "error", {}, failure
    if comp.finish == "error":
        return "error", {}, comp.error
    if comp.finish == "length":
        return "truncated", {}, f"output reached max_tokens ({head.recipe.max_tokens}) before the answer ended"
    try:
        values = head.parse(comp.text)
    except RowError as exc:
        return "error", {}, f"output does not fit the {head.recipe.id} format: {exc}"
    return "ok", {**values, **head.confidences(comp.text, comp.steps, comp.confidence)}, ""


def assemble(work: UnitWork, heads: list[HeadInstance], completions: list[Completion] | None, failure: str,
             keep: list[str], plan_models: dict, chexpert_numeric: bool) -> pa.Table:
    """The part table for the unit: kept input columns, identity, row status, every head's columns."""
    n = work.table.num_rows
    by_slot = {}
    if completions is not None:
        by_slot = {(r.row, r.slot): c for r, c in zip(work.requests, completions)}
    cols: dict[str, list] = {}
    row_status = []
    for i in range(n):
        states = []
        for head in heads:
            if work.inputs[i] is None:
                status, values = "not_applicable", {}
                error = ("report text is not valid UTF-8 (re-export it or pass --encoding)"
                         if work.row_status[i] == "bad_text" else "empty report text")
            elif (i, head.key) in work.skipped:
                status, values, error = "not_applicable", {}, work.skipped[(i, head.key)]
            else:
                status, values, error = _head_result(head, by_slot.get((i, head.key)), failure)
            states.append(status)
            for field in head.output_fields()[:-3]:
                cols.setdefault(field.name, []).append(values.get(field.name))
            cols.setdefault(head.col("status"), []).append(status)
            cols.setdefault(head.col("error"), []).append(error or None)
            ran = status in ("ok", "error", "truncated") and (i, head.key) not in work.skipped
            cols.setdefault(head.col("model"), []).append(plan_models[head.key].name if ran else None)
        row_status.append(work.row_status[i] or _row_status(states))
    return _table(work, heads, keep, cols, row_status, chexpert_numeric)


def _row_status(states: list[str]) -> str:
    bad = any(s in ("error", "truncated") for s in states)
    if not bad:
        return "ok"
    return "partial" if "ok" in states else "failed"


def _table(work: UnitWork, heads, keep, cols, row_status, chexpert_numeric) -> pa.Table:
    n = work.table.num_rows
    arrays, names = [], []
    for name in keep:
        col = work.table.column(name)
        if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
            col = pa.array([None if v is None else v.decode("utf-8", "replace") for v in col.to_pylist()],
                           pa.string())
        arrays.append(col)
        names.append(name)
    arrays += [pa.array([work.file_index] * n, pa.int32()), pa.array([work.source_file] * n, pa.string()),
               pa.array(range(work.start_row, work.start_row + n), pa.int64()), pa.array(row_status, pa.string())]
    names += ["_source_index", "source_file", "source_row", "status"]
    for head in heads:
        for field in head.output_fields():
            arrays.append(pa.array(cols[field.name], field.type))
            names.append(field.name)
            if chexpert_numeric and head.recipe.id == "abnormality_detection" and field.type == pa.string() \
                    and field.name.rsplit("__", 1)[1] not in ("status", "error", "model"):
                arrays.append(pa.array([CHEXPERT_NUMERIC.get(v) for v in cols[field.name]], pa.int8()))
                names.append(field.name + "_numeric")
    return pa.Table.from_arrays(arrays, names=names)
