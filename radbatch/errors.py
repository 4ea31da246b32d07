"""The few exception types radbatch raises, each mapped to one exit code by the CLI.

Messages name files, columns and row identities, never report text (it may hold patient information).
"""

from __future__ import annotations


class RadbatchError(Exception):
    exit_code = 1


class RecipeError(RadbatchError):
    """A recipe file is invalid; carries every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid recipes:\n" + "\n".join(f"  - {p}" for p in self.problems))


class InputError(RadbatchError):
    """The input archive or an option cannot be used (missing column, unreadable file, ...)."""

    exit_code = 2


class EngineError(RadbatchError):
    """A model cannot be loaded or the engine died: fatal for the run."""

    exit_code = 3


class StorageError(RadbatchError):
    """The output cannot be written, or conflicts with an existing run."""

    exit_code = 4


class RowError(Exception):
    """A per-row failure (bad model output, ...): recorded in `<task>__error`, never fatal."""


# What the run is working on (an input file, a work unit, an output), named in the one-line message for an
# unexpected exception. A plain global: the main process sets it as it goes; it never holds report text.
_activity = "starting"


def working_on(what: str) -> None:
    global _activity
    _activity = what


def activity() -> str:
    return _activity
