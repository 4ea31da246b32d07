"""The one error-to-exit-code policy of every `radbatch` command, applied by the command group.

Commands raise; they never choose an exit code themselves (except 1 for `--fail-on-row-errors`, a result, not
an error). The mapping, one place for every command:

    0    finished (row errors are data)
    1    row errors and --fail-on-row-errors (EXIT_ROW_ERRORS); a click.ClickException
    2    InputError, RecipeError (and eval's EvalError, an InputError); click.UsageError
    3    EngineError
    4    StorageError; an OSError while writing a command's output (inside `writing(...)`)
    70   any other exception: a radbatch bug (one line, never the exception's message)
    130  KeyboardInterrupt, or Interrupted raised by a command with its own resume message

The codes of radbatch's own errors are their `exit_code` class attributes (errors.py), so the Python API and the
CLI agree. Only click is imported here: `import radbatch.cli.main` stays light.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sys
import traceback
from typing import Iterator

import click

from radbatch.errors import RadbatchError, StorageError

EXIT_ROW_ERRORS = 1
EXIT_INTERNAL = 70   # sysexits' EX_SOFTWARE
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141   # 128 + SIGPIPE, what a shell reports for a tool killed by a closed pipe


class Interrupted(Exception):
    """A command was interrupted and says how to resume (the message is printed as is, then exit 130)."""


def exit_code(exc: BaseException) -> int:
    """The exit code for an exception that reached the command group."""
    if isinstance(exc, RadbatchError):
        return exc.exit_code
    if isinstance(exc, (KeyboardInterrupt, Interrupted)):
        return EXIT_INTERRUPTED
    return EXIT_INTERNAL


@contextlib.contextmanager
def writing(path: object = None, hint: str = "") -> Iterator[None]:
    """An OSError while writing a command's output is a storage error (exit 4), not a bug. The message names
    `path` (else the file the OSError names) and the OS's reason, never the exception's text."""
    try:
        yield
    except OSError as exc:
        where = path if path is not None else exc.filename or "output"
        reason = exc.strerror or type(exc).__name__
        raise StorageError(f"cannot write {where}: {reason}.{' ' + hint if hint else ''}") from None


def _raised_at(exc: BaseException) -> str:
    """'radbatch/annotation/finalize.py:120' for the innermost radbatch frame of the traceback (no values, no message)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "/radbatch/" in f.filename.replace(os.sep, "/")]
    if not frames:
        return "outside radbatch"
    name = frames[-1].filename.replace(os.sep, "/").rsplit("/radbatch/", 1)[1]
    return f"at radbatch/{name}:{frames[-1].lineno}"


def report_unexpected(exc: BaseException):
    """One line for an exception radbatch did not expect, then exit 70: its type, where it was raised and what
    the run was working on. Never str(exc): an exception's arguments may quote a report."""
    from radbatch.errors import activity
    kind = type(exc).__name__
    if isinstance(exc, OSError) and exc.errno in errno.errorcode:
        kind += f" ({errno.errorcode[exc.errno]})"
    click.echo(f"Error: unexpected {kind} {_raised_at(exc)} while working on {activity()}. This is a radbatch "
               "bug, not a problem with your reports: please report this line (it holds no report text). "
               "Finished parts are kept; rerun the same command to resume.", err=True)
    sys.exit(EXIT_INTERNAL)


def handle_errors(fn):
    """Apply the policy around `fn`: one clear message and its exit code, never a traceback. Click's own
    exceptions (UsageError 2, ClickException 1, Exit, Abort) pass through to Click."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except RadbatchError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exit_code(exc))
        except Interrupted as exc:
            click.echo(f"\n{exc}", err=True)
            sys.exit(exit_code(exc))
        except BrokenPipeError:  # stdout closed by the reader (`radbatch tasks | head`): stop quietly, like cat
            _quiet_stdout()
            sys.exit(EXIT_BROKEN_PIPE)
        except KeyboardInterrupt as exc:  # Ctrl-C outside the work loop (planning, model hashing, finalize)
            click.echo("\nInterrupted. Rerun the same command to resume.", err=True)
            sys.exit(exit_code(exc))
        except Exception as exc:  # a bug: one line, never a traceback or the exception's text
            report_unexpected(exc)
    return wrapper


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so Python's exit-time flush does not raise a second BrokenPipeError."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class PolicyGroup(click.Group):
    """A command group whose every command (its own, added ones and nested groups) runs under the policy."""

    def invoke(self, ctx: click.Context):
        return handle_errors(super().invoke)(ctx)
