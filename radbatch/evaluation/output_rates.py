"""How often a head's output was unusable: cut at max_tokens, or not a legal answer.

Two readings of the same annotate statuses:
* `head_rates` (in `radbatch eval`): over a head's scored items (gold rows, not_applicable excluded).
* `frame_rates` (no gold needed, e.g. real reports): over the rows where the head ran (status ok, error or
  truncated), from `<task>__status` and `<task>__error`.

An *invalid output* is an answer the model finished that is not a legal one: annotate's parser refused it
(status error, "output does not fit the <task> format: ...", written by radbatch/annotation/rows.py), or it parsed but
lies outside the recipe vocabulary (eval's `invalid_predictions`). Other errors (the engine failed, the
prompt did not fit the context) are counted apart, since they say nothing about what the model answers.
Only statuses and error messages are read; error messages never hold report text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and polars load with the evaluation itself, not with the table printer
    import numpy as np
    import polars as pl

FORMAT_ERROR_PREFIX = "output does not fit the "
RAN = ("ok", "error", "truncated")


def is_format_error(message: object) -> bool:
    return isinstance(message, str) and message.startswith(FORMAT_ERROR_PREFIX)


def _rate(count: int, n: int) -> dict:
    return {"rate": count / n if n else float("nan"), "count": int(count), "n": int(n)}


def head_rates(counts: dict[str, int], format_errors: int) -> dict[str, dict]:
    """truncation, invalid_output and other_error rates over the scored items of one head.

    counts: the head's counts (scored, truncated, error, invalid_predictions); format_errors: how many of
    its error rows are parser refusals.
    """
    n = counts["scored"]
    return {
        "truncation": _rate(counts["truncated"], n),
        "invalid_output": _rate(format_errors + counts.get("invalid_predictions", 0), n),
        "other_error": _rate(counts["error"] - format_errors, n),
    }


def format_errors_among(table: pl.DataFrame, task: str, keys: np.ndarray, status: np.ndarray,
                        key_column: str) -> int:
    """Parser refusals among the items `keys` (rows of `table` by `key_column`) whose status is error."""
    import polars as pl

    column = f"{task}__error"
    erred = keys[status == "error"]
    if column not in table.columns or erred.size == 0:
        return 0
    messages = table.filter(pl.col(key_column).is_in(erred.tolist()))[column].to_list()
    return sum(is_format_error(m) for m in messages)


def frame_rates(frame: pl.DataFrame, task: str) -> dict | None:
    """Rates over the rows where `task` ran, from an annotated table without gold; None: the head is absent.

    Returns ran, not_applicable, ok, truncation, invalid_output (parser refusals only: without gold
    there is no vocabulary check beyond the parser's) and other_error.
    """
    status_col, error_col = f"{task}__status", f"{task}__error"
    if status_col not in frame.columns:
        return None
    status = frame[status_col].to_list()
    errors = frame[error_col].to_list() if error_col in frame.columns else [None] * len(status)
    ran = sum(s in RAN for s in status)
    fmt = sum(s == "error" and is_format_error(e) for s, e in zip(status, errors))
    return {
        "ran": ran,
        "not_applicable": sum(s == "not_applicable" for s in status),
        "ok": sum(s == "ok" for s in status),
        "truncation": _rate(sum(s == "truncated" for s in status), ran),
        "invalid_output": _rate(fmt, ran),
        "other_error": _rate(sum(s == "error" for s in status) - fmt, ran),
    }


def rates_line(rates: dict[str, dict]) -> str:
    """`rates: truncation 0.021 (3/140), invalid output 0.000 (0/140), other errors 0.000 (0/140)`"""
    def one(name: str, label: str) -> str:
        r = rates[name]
        value = "n/a" if r["n"] == 0 else f"{r['rate']:.3f}"
        return f"{label} {value} ({r['count']}/{r['n']})"
    return ("rates: " + one("truncation", "truncation") + ", " + one("invalid_output", "invalid output")
            + ", " + one("other_error", "other errors"))
