"""`radbatch eval`: the RadLite paper's metrics, with bootstrap intervals and baselines, on labelled archives.

Library entry points (imported lazily so that `import radbatch.evaluation` and the CLI stay light):

    evaluate(predictions, gold=None, id_column=None, report_dir=None, tasks=None, settings=Settings())
        -> EvalResult        (radbatch.evaluation.api)
    format_table(result) -> str          the terminal table
    EvalResult.to_json() / .write_json(path)   metrics.json
    eval_command                         the Click command (radbatch.cli.evaluate)

See docs/evaluation.md for what each metric means and how rows are joined and counted.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "evaluate": "api",
    "EvalResult": "result",
    "Settings": "result",
    "format_table": "table_text",
    "EvalError": "errors",
    "eval_command": "command",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'radbatch.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
