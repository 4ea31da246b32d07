"""A small supervisor of worker processes that survives worker deaths.

Standard pools hang or break when a worker is killed (OOM killer, SIGKILL, an abort inside llama.cpp). Here each
worker has its own pipe; the supervisor waits on pipes and process sentinels together, so a death is seen at
once: the worker is replaced and its unit retried up to `max_attempts` times, after which the unit comes back
as failed with the reason, and the job goes on. A worker that dies while loading its models is fatal.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Iterable, Iterator

from .engine import WorkerSpec
from .errors import EngineError

# Units given up on (worker died max_attempts times) with no unit done in between: the model, adapter or engine
# is broken, not the reports, and going on would only crash-loop through the archive.
MAX_FAILED_UNITS_IN_A_ROW = 3


@dataclass
class UnitOutcome:
    unit: Any
    completions: list | None      # None when the unit failed
    failure: str = ""


def crash_if_asked(unit_id: str) -> None:
    """Test-only fault injection (tests/test_faults*.py, tests/test_ray.py): RADBATCH_TEST_CRASH_UNIT="0:8,0:16"
    kills the worker with SIGKILL when it receives one of these units ("load": while loading). Options after
    ';': `segv` crashes in native code instead, `once=PATH` crashes only while PATH does not exist (it is
    created first)."""
    units, *opts = os.environ.get("RADBATCH_TEST_CRASH_UNIT", "").split(";")
    if unit_id not in units.split(","):
        return
    flags = dict(o.partition("=")[::2] for o in opts)
    if flags.get("once"):
        if os.path.exists(flags["once"]):
            return
        open(flags["once"], "w").close()
    if "segv" in flags:
        import ctypes
        ctypes.string_at(0)  # a NULL read in native code: SIGSEGV
    os.kill(os.getpid(), signal.SIGKILL)


def _die_with_parent() -> None:
    """A supervisor killed with SIGKILL cannot stop its workers; have the kernel do it (Linux), so an
    orphaned worker never keeps burning CPU on a unit nobody will collect."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker_main(conn, spec: WorkerSpec, needed: set[str]) -> None:
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the supervisor died before the death signal was armed
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor handles Ctrl-C and stops us
    from .engine import build_engines, run_unit
    crash_if_asked("load")
    try:
        engines = build_engines(spec, needed)
        reply = ("ready", os.getpid())
    except Exception as exc:  # report the load failure; never the traceback of a report
        engines, reply = None, ("fatal", f"{type(exc).__name__}: {exc}")
    try:
        conn.send(reply)
    except OSError:
        return  # the supervisor died while we loaded
    if engines is None:
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the supervisor is gone (killed): exit quietly instead of lingering or a traceback
        if msg is None:
            return
        unit_id, requests = msg
        crash_if_asked(unit_id)
        try:
            reply = ("done", unit_id, run_unit(engines, requests))
        except Exception as exc:
            reply = ("unit_error", unit_id, f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except OSError:
            return  # the supervisor is gone


@contextlib.contextmanager
def _main_not_reimported():
    """Start a spawned worker without re-importing the parent's __main__ in it. Workers run radbatch code
    only; re-importing a user's script that calls `radbatch.annotate` at top level (no `if __name__ ==
    "__main__"` guard) would start annotate again inside the worker and kill it. spawn records the main module
    by its spec name or file; hiding both while the child's preparation data is taken skips that import."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None   # spawn reads `__spec__.name` with getattr(..., None): None means "no module"
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


class _Worker:
    def __init__(self, ctx, spec: WorkerSpec, needed: set[str]):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, spec, needed), daemon=True)
        with _main_not_reimported():
            self.proc.start()
        child.close()
        self.ready = False
        self.unit = None  # (unit, unit_id) in flight


class Pool:
    def __init__(self, spec: WorkerSpec, workers: int, needed: set[str], max_attempts: int = 3):
        self.spec, self.n, self.needed, self.max_attempts = spec, workers, needed, max_attempts
        self.ctx = mp.get_context("spawn")
        self.workers: list[_Worker] = []

    def start(self) -> None:
        """Start all workers and wait until each has loaded its models (errors are fatal here)."""
        self.workers = [_Worker(self.ctx, self.spec, self.needed) for _ in range(self.n)]
        for w in self.workers:
            self._await_ready(w)

    def _await_ready(self, w: _Worker) -> None:
        ready = wait([w.conn, w.proc.sentinel])
        if w.conn in ready:
            try:
                msg = w.conn.recv()
            except EOFError:  # the pipe closes as the process dies: report the death, not the pipe
                msg = None
                w.proc.join(5)
            if msg is not None and msg[0] == "ready":
                w.ready = True
                return
            if msg is not None:
                self.close()
                raise EngineError(f"A worker could not load its model(s): {msg[1]}")
        self.close()
        raise EngineError(f"A worker died while loading its model(s) (exit code {w.proc.exitcode}); "
                          "the GGUF or adapter file may be corrupt or truncated, or memory ran out.")

    def _next(self, source: Iterator, pending: deque):
        if pending:
            return pending.popleft()
        if self._source_done:
            return None
        item = next(source, None)
        self._source_done = item is None
        return item

    def run(self, units: Iterable[tuple[str, Any, list]]) -> Iterator[UnitOutcome]:
        """units: (unit_id, unit, requests). Yields outcomes as units finish (not in input order)."""
        source, pending, attempts = iter(units), deque(), {}
        self._source_done, self._failed_in_a_row = False, 0
        while True:
            for w in self.workers:
                if w.unit is None and (item := self._next(source, pending)) is not None:
                    w.unit = item
                    try:
                        w.conn.send((item[0], item[2]))
                    except OSError:
                        pass  # it died while idle: its sentinel is ready and _collect retries the unit
            busy = [w for w in self.workers if w.unit is not None]
            if not busy:
                return  # every idle worker was offered work: nothing pending, source exhausted
            by_handle = {h: w for w in busy for h in (w.conn, w.proc.sentinel)}
            for handle in wait(list(by_handle)):
                w = by_handle[handle]
                if w.unit is not None and w in self.workers:
                    outcome = self._collect(w, handle, attempts, pending)
                    if outcome is not None:
                        yield outcome

    def _collect(self, w: _Worker, handle, attempts: dict, pending: deque) -> UnitOutcome | None:
        unit_id, unit, requests = w.unit
        if handle is w.conn:
            try:
                msg = w.conn.recv()
            except (EOFError, OSError):
                msg = None
            if msg is not None:
                w.unit = None
                if msg[0] == "done":
                    self._failed_in_a_row = 0
                    return UnitOutcome(unit, msg[2])
                return UnitOutcome(unit, None, f"engine error: {msg[2]}")
        # The worker died holding this unit: replace it, retry the unit a bounded number of times.
        w.unit = None
        w.proc.join(timeout=5)
        code = w.proc.exitcode
        self._replace(w)
        attempts[unit_id] = attempts.get(unit_id, 0) + 1
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        if attempts[unit_id] < self.max_attempts:
            pending.append((unit_id, unit, requests))
            return None
        self._failed_in_a_row += 1
        if self._failed_in_a_row >= MAX_FAILED_UNITS_IN_A_ROW:
            self.close()
            raise EngineError(f"Workers died ({how}) on {self._failed_in_a_row} units in a row, {self.max_attempts} "
                              "tries each: the model, adapter or engine is broken, not the reports. Parts already "
                              "written are kept; fix the cause and rerun the same command to resume.")
        return UnitOutcome(unit, None, f"worker died ({how}) on this unit {attempts[unit_id]} times")

    def _replace(self, w: _Worker) -> None:
        idx = self.workers.index(w)
        fresh = _Worker(self.ctx, self.spec, self.needed)
        self.workers[idx] = fresh
        self._await_ready(fresh)

    def close(self) -> None:
        for w in self.workers:
            try:
                if w.proc.is_alive():
                    w.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for w in self.workers:
            w.proc.join(timeout=2)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(timeout=2)
        self.workers = []
