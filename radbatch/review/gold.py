"""Reviewed answers back into `gold__<task>__<field>` columns.

Reads filled review CSVs (review.csv, or the CSV review.html downloads) and Label Studio JSON exports of the
tasks `radbatch review` wrote; writes the annotated rows that got an answer, with all their columns (report
text included: `radbatch finetune` needs it) and the gold columns, so that `radbatch eval reviewed.parquet`
scores them and `radbatch finetune` trains on them. Rows are matched on (source_file, source_row).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from radbatch.errors import InputError

from .answers import ReviewHead, review_head
from .export import OK
from .files import write_private
from .queue import KEYS

GOLD_PREFIX = "gold__"


@dataclass
class Answer:
    task: str
    key: tuple[str, int]
    given: dict[str, str]      # control -> canonical choice or OK, for the controls the reviewer filled
    where: str                 # file and row/task number, for messages (never report text)


def read_answers(path: Path) -> list[Answer]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise InputError(f"answers file '{path}' not found.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read answers file '{path}': {exc}") from exc
    if path.suffix.lower() == ".json":
        return _labelstudio(path, text)
    return _csv(path, text)


def _csv(path: Path, text: str) -> list[Answer]:
    while text.startswith("#"):  # the notice line(s) above the header; report text below may hold '#' lines
        text = text.split("\n", 1)[1] if "\n" in text else ""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    need = {"head", *KEYS}
    missing = need - set(reader.fieldnames or [])
    if missing:
        raise InputError(f"'{path}' lacks column(s) {', '.join(sorted(missing))}: give the review.csv that "
                         "`radbatch review` wrote (or the CSV review.html downloads), with correct_* filled.")
    out = []
    for n, row in enumerate(reader, 2):
        given = {k[len("correct_"):]: v.strip() for k, v in row.items()
                 if k and k.startswith("correct_") and v and v.strip()}
        if given:
            out.append(Answer(row["head"], (row["source_file"], _row_number(row["source_row"], path, n)), given,
                              f"{path.name} line {n}"))
    return out


def _row_number(value: str, path: Path, n: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"{path.name} line {n}: source_row must be a whole number.") from None


def _labelstudio(path: Path, text: str) -> list[Answer]:
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"'{path}' is not JSON ({exc.msg} at line {exc.lineno}). Export the Label Studio "
                         "project as JSON.") from exc
    if not isinstance(tasks, list):
        raise InputError(f"'{path}' is not a Label Studio JSON export (a list of tasks).")
    out = []
    for n, task in enumerate(tasks, 1):
        data = task.get("data", {}) if isinstance(task, dict) else {}
        if not all(k in data for k in ("radbatch_head", *KEYS)):
            raise InputError(f"{path.name} task {n}: data lacks radbatch_head, source_file or source_row; "
                             "export a project made from `radbatch review`'s labelstudio_tasks.json.")
        done = [a for a in task.get("annotations", []) if not a.get("was_cancelled") and a.get("result")]
        if not done:
            continue  # not labelled yet
        given = {}
        for r in done[-1]["result"]:  # the latest submitted annotation
            choices = (r.get("value") or {}).get("choices") or []
            if r.get("type") == "choices" and choices:
                given[r["from_name"]] = choices[0]
        if given:
            out.append(Answer(data["radbatch_head"], (data["source_file"], _row_number(data["source_row"], path, n)),
                              given, f"{path.name} task {n}"))
    return out


def gold_values(head: ReviewHead, answer: Answer, model_outputs: dict[str, object], problems: list[str]) -> dict:
    """field -> gold value for one answered row (blank controls keep the model's answer)."""
    unknown = [k for k in answer.given if k not in {c.name for c in head.controls}]
    if unknown:
        problems.append(f"{answer.where}: unknown answer column(s) {', '.join(unknown)} for {head.task}")
        return {}
    values: dict[str, object] = {}
    for c in head.controls:
        text = answer.given.get(c.name)
        if text is None or text.lower() == OK:
            model = c.answer_of(model_outputs)
            if model is None:
                problems.append(f"{answer.where}: {c.name} is "
                                f"{'blank' if text is None else OK!r} but the model gave no valid answer; "
                                "choose one")
                continue
            values.update(c.choices[model])
            continue
        choice = c.lookup(text)
        if choice is None:
            problems.append(f"{answer.where}: correct_{c.name} is not one of the allowed answers ({len(c.choices)} "
                            f"choices, e.g. {', '.join(list(c.choices)[:4])}) nor '{OK}'")
            continue
        values.update(c.choices[choice])
    return values


def import_answers(files: list[Path], annotated: Path, output: Path) -> dict[str, int]:
    """Write `output`: the answered rows of `annotated` plus gold__ columns. Returns answered rows per head."""
    answers = [a for f in files for a in read_answers(f)]
    if not answers:
        raise InputError("no answered rows in " + ", ".join(str(f) for f in files)
                         + " (fill correct_* in the CSV, or submit annotations in Label Studio).")
    try:
        table = pq.read_table(annotated)
    except FileNotFoundError as exc:
        raise InputError(f"annotated file '{annotated}' not found.") from exc
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read '{annotated}' as Parquet ({type(exc).__name__}).") from exc
    missing = [k for k in KEYS if k not in table.column_names]
    if missing:
        raise InputError(f"'{annotated}' lacks {', '.join(missing)}: give the file `radbatch annotate` wrote.")
    position = {(f, int(r)): i for i, (f, r) in enumerate(zip(table.column("source_file").to_pylist(),
                                                             table.column("source_row").to_pylist()))}
    heads = {t: review_head(t) for t in dict.fromkeys(a.task for a in answers)}
    problems: list[str] = []
    gold: dict[str, dict[int, object]] = {}     # gold column -> row position -> value
    seen: dict[tuple[str, int], tuple[dict, str]] = {}
    for a in answers:
        if a.key not in position:
            problems.append(f"{a.where}: no row source_file={a.key[0]!r} source_row={a.key[1]} in '{annotated}'")
            continue
        head, i = heads[a.task], position[a.key]
        outputs = {f: _cell(table, f"{a.task}__{f}", i) for f in head.fields}
        values = gold_values(head, a, outputs, problems)
        if not values:
            continue
        previous = seen.get((a.task, i))
        if previous and previous[0] != values:
            problems.append(f"{a.where}: contradicts {previous[1]} for the same row and head")
            continue
        seen[(a.task, i)] = (values, a.where)
        for f in head.fields:
            gold.setdefault(f"{GOLD_PREFIX}{a.task}__{f}", {})[i] = values.get(f)
    if problems:
        raise InputError(f"{len(problems)} problem(s) in the answers:\n" + "\n".join(f"  - {p}" for p in problems))
    rows = sorted({i for _, i in seen})
    out = table.take(pa.array(rows, pa.int64()))
    for column, by_row in gold.items():
        values = pa.array([by_row.get(i) for i in rows], pa.string())
        if column in out.column_names:  # reviewed answers replace older gold on these rows
            idx = out.column_names.index(column)
            keep = pc.if_else(pa.array([i in by_row for i in rows]), values, out.column(column).cast(pa.string()))
            out = out.set_column(idx, column, keep)
        else:
            out = out.append_column(column, values)
    write_private(Path(output), b"", writer=lambda f: pq.write_table(out, f))
    counts: dict[str, int] = {}
    for task, _ in seen:
        counts[task] = counts.get(task, 0) + 1
    return counts


def _cell(table: pa.Table, column: str, i: int):
    return table.column(column)[i].as_py() if column in table.column_names else None
