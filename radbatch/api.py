"""The Python API: what a notebook or a pipeline calls. The `radbatch` CLI calls these same functions.

    import radbatch
    out = radbatch.annotate("reports.parquet", "annotated.parquet", tasks="m_staging,rads_assignment")
    out.filter(pl.col("m_staging__stage") == "M1").collect()
    radbatch.eval("annotated.parquet").heads()

Everything the CLI guarantees holds here too (every row exactly once with a status, resume with the same
call, run key, owner-only files), because it is the same code. Errors are `radbatch.errors.RadbatchError`
subclasses carrying the CLI's exit code.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from radbatch.annotation.plan import AnnotateOptions
from radbatch.archive.fingerprint import hash_file
from radbatch.archive.reading import ColumnOptions

from .archive import storage
from .errors import InputError, StorageError

if TYPE_CHECKING:
    import polars as pl

    from radbatch.annotation.pipeline import RunSummary
    from radbatch.annotation.plan import Plan

# Keyword arguments that fill ColumnOptions: the CLI's --<name> options, by the same names.
COLUMN_ARGS = {f"{f.name}_column": f.name for f in dataclasses.fields(ColumnOptions)}
OPTION_ARGS = {f.name for f in dataclasses.fields(AnnotateOptions)} - {"inputs", "output", "columns"}


def annotate_options(inputs: list[str], output: str, **options: Any) -> AnnotateOptions:
    """AnnotateOptions from keyword arguments named like the CLI options (`text_column=`, `tasks=`, ...), or
    `columns=` a ColumnOptions instead of the column options (what the CLI's option decorators build).
    Unknown names are refused, all at once, with the known ones listed: a typo never means a default."""
    unknown = sorted(set(options) - OPTION_ARGS - set(COLUMN_ARGS) - {"columns"})
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(OPTION_ARGS | set(COLUMN_ARGS) | {'columns'}))}")
    columns = {COLUMN_ARGS[k]: v for k, v in options.items() if k in COLUMN_ARGS}
    if options.get("columns") is not None:
        if columns:
            raise InputError(f"give columns= or {', '.join(sorted(set(options) & set(COLUMN_ARGS)))}, not both")
        columns = dataclasses.asdict(options["columns"])
    rest = {k: v for k, v in options.items() if k in OPTION_ARGS}
    for name in ("questions", "keep_columns"):
        if isinstance(rest.get(name), str):
            rest[name] = tuple(c.strip() for c in rest[name].split(",") if c.strip()) \
                if name == "keep_columns" else (rest[name],)
        elif rest.get(name) is not None:
            rest[name] = tuple(rest[name])
    if isinstance(rest.get("tasks"), (list, tuple)):
        rest["tasks"] = ",".join(rest["tasks"])
    return AnnotateOptions(tuple(inputs), output, columns=ColumnOptions(**columns), **rest)


def annotate(source: Any, output: str | os.PathLike | None = None, *,
             on_start: Callable[["Plan", int, int], None] | None = None,
             on_summary: Callable[["RunSummary"], None] | None = None, **options: Any) -> "pl.LazyFrame":
    """Annotate reports and return a polars LazyFrame over the written output (memory stays bounded;
    `.collect()` it for small inputs).

    source: a Parquet/CSV path, a directory, a glob, an s3://bucket/key URI (an object, a prefix or a glob over
        keys), a list of those, or a polars DataFrame / LazyFrame, a pandas DataFrame or a pyarrow Table. In-memory sources are first written once to an owner-only
        Parquet file named by its content, beside the output (`<output>.input/`), so a second call with the
        same frame resumes instead of starting over; `source_file` names that file.
    output: a .parquet file, a directory ending in '/', or an s3://bucket/key.parquet object (uploaded once
        complete; its work directory stays local, storage.work_dir). None: a new owner-only temporary directory
        (it holds report text and annotations: pass an output you control for anything you keep).
    options: the CLI's options by name: tasks="m_staging,nli" or a list, questions, limit, keep_columns,
        workers, threads, model, models_file, routing_file, adapter, engine, executor, ray_address, restart,
        retry_errors, chexpert_numeric, encoding, s3_endpoint (an S3-compatible store's URL; credentials come
        from the AWS environment variables and files), and the column options (text_column=, ...).
        Without quiet=False there is no progress bar.
    """
    from radbatch.annotation.pipeline import annotate as run

    _check_uris(source, output)   # before anything records a path: a URI may carry a secret
    storage.configure(options.get("s3_endpoint"))
    output = _output(output)
    inputs = _inputs(source, output)
    options.setdefault("quiet", True)
    summary = run(annotate_options(inputs, output, **options), on_start=on_start)
    if on_summary:
        on_summary(summary)
    return _scan(summary.outputs)


def eval(predictions: Any, gold: str | os.PathLike | None = None, *, id_column: str | None = None,
         report_dir: str | os.PathLike | None = None, tasks: list[str] | str | None = None):
    """Score one annotated output (or two, to compare runs) against gold columns; returns the EvalResult
    (`.to_json()` has every figure; `report_dir` also writes report.html and metrics.json)."""
    from radbatch.evaluation.api import evaluate

    paths = [predictions] if isinstance(predictions, (str, os.PathLike)) else list(predictions)
    if isinstance(tasks, str):
        tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    return evaluate([Path(p) for p in paths], Path(gold) if gold else None, id_column,
                    Path(report_dir) if report_dir else None, tasks)


def _check_uris(source: Any, output: Any) -> None:
    """Refuse a URI carrying credentials (or of a scheme radbatch cannot read) before any path is used."""
    items = [source] if isinstance(source, (str, os.PathLike)) else \
        list(source) if isinstance(source, (list, tuple)) else []
    for item in items:
        if isinstance(item, str):
            storage.check_uri(item, "an input")
    if isinstance(output, str):
        storage.check_uri(output, "the output (-o)")


def _output(output: str | os.PathLike | None) -> str:
    if output is None:
        return str(Path(tempfile.mkdtemp(prefix="radbatch-")) / "annotated.parquet")  # mkdtemp: mode 0700
    text = os.fspath(output)
    if storage.is_uri(text):
        return text
    return text if text.endswith("/") or not Path(text).is_dir() else text.rstrip("/") + "/"


def _inputs(source: Any, output: str) -> list[str]:
    if isinstance(source, (str, os.PathLike)):
        return [os.fspath(source)]
    if isinstance(source, (list, tuple)) and all(isinstance(s, (str, os.PathLike)) for s in source):
        if not source:
            raise InputError("no input given: pass a path, a glob, a list of paths or a data frame")
        return [os.fspath(s) for s in source]
    if storage.is_uri(output):   # staged beside the output's local work directory
        return [str(_stage(source, storage.work_dir(output).with_suffix(".input")))]
    return [str(_stage(source, Path(output.rstrip("/") + ".input")))]


def _stage(frame: Any, folder: Path) -> Path:
    """Write an in-memory source to `folder/<sha256 of its Parquet bytes>.parquet`, owner-only."""
    import pyarrow.parquet as pq

    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")   # mkstemp: mode 0600
        os.close(fd)
        kind = type(frame).__module__.split(".")[0] + "." + type(frame).__name__
        if kind == "polars.LazyFrame":
            frame.sink_parquet(tmp)                                # streams: bounded memory
        else:
            pq.write_table(_arrow(frame, kind), tmp)
        final = folder / f"{hash_file(tmp)[:32]}.parquet"
        if final.exists():       # the same frame again: keep the first file, so the run resumes
            os.unlink(tmp)
        else:
            os.replace(tmp, final)
        return final
    except OSError as exc:
        raise StorageError(f"cannot write the staged input in {folder}: {exc.strerror or type(exc).__name__}. "
                           "Pass an output in a writable location.") from None


def _arrow(frame: Any, kind: str):
    if kind == "pyarrow.Table":
        return frame
    if kind == "polars.DataFrame":
        return frame.to_arrow()
    if kind == "pandas.DataFrame":
        import pyarrow as pa
        return pa.Table.from_pandas(frame, preserve_index=False)
    raise InputError(f"cannot annotate a {kind}: pass a path, a glob, a list of paths, a polars or pandas "
                     "DataFrame, a polars LazyFrame or a pyarrow Table")


def _scan(outputs: list) -> "pl.LazyFrame":
    import polars as pl

    if any(storage.is_uri(p) for p in outputs):
        return pl.concat([storage.scan(p) for p in outputs])
    return pl.scan_parquet([str(p) for p in outputs])
