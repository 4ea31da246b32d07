"""A small supervisor of worker processes that survives worker deaths.

Standard pools hang or break when a worker is killed (OOM killer, SIGKILL, an abort inside llama.cpp). Here each
worker has its own pipe; the supervisor waits on pipes and process sentinels together, so a death is seen at
once: the worker is replaced and its unit retried up to `max_attempts` times, after which the unit comes back
as failed with the reason, and the job goes on. A worker that dies while loading its models is fatal.

A worker that hangs is treated as one that died: `Watchdog` judges it by its own CPU time and by a counter its
engine bumps per decode step, kills it with SIGKILL and the unit is retried. An engine that raises counts toward
the broken-engine stop as deaths do.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, fields
from multiprocessing.connection import wait
from typing import Any, Iterable, Iterator

from radbatch.engines.spec import WorkerSpec
from radbatch.errors import EngineError

# Units given up on (worker died max_attempts times) with no unit done in between: the model, adapter or engine
# is broken, not the reports, and going on would only crash-loop through the archive.
MAX_FAILED_UNITS_IN_A_ROW = 3


WATCHDOG_ENV = "RADBATCH_WATCHDOG"


@dataclass(frozen=True)
class Watchdog:
    """When a worker is hung rather than slow. Never judged on wall time alone: llama.cpp slows 20-40x when
    other work shares the cores, and a slow worker must not be killed. A worker holding a unit is hung when
      * it burned `spin_cpu_s` CPU-seconds (its own, all threads, from /proc/<pid>/stat) since its engine last
        bumped the decode-step counter: a native loop that never returns (a heartbeat thread would keep beating,
        since ctypes releases the GIL). The largest gap between two steps is one prompt chunk of at most 512
        tokens (batched engine) or one whole prompt prefill (simple engine): seconds to a few CPU-minutes for a
        4B model with a long context, so 30 CPU-minutes is far out of reach of any real step;
      * its CPU time did not grow by a single clock tick for `stopped_s` seconds that the supervisor itself was
        running (SIGSTOP, a blocked read, a deadlock). A worker that is only slowed still gets CPU every second.
    Loading the models gets the same two checks, with `load_cpu_s` as the CPU budget (loading bumps no counter).
    `poll_s` is how often the supervisor looks. A hung worker is killed with SIGKILL (SIGTERM stays pending on a
    stopped process). Set from `RADBATCH_WATCHDOG` (`stopped_s=120,spin_cpu_s=600`); without /proc (not
    Linux) there is no hang check."""

    spin_cpu_s: float = 1800.0
    stopped_s: float = 600.0
    load_cpu_s: float = 1800.0
    poll_s: float = 5.0

    @classmethod
    def from_env(cls) -> "Watchdog":
        return cls.from_text(os.environ.get(WATCHDOG_ENV, ""))

    @classmethod
    def from_text(cls, text: str) -> "Watchdog":
        """The RADBATCH_WATCHDOG syntax; the driver reads it once (settings.Settings)."""
        values = {}
        known = [f.name for f in fields(cls)]
        for item in filter(None, (x.strip() for x in text.split(","))):
            name, eq, raw = item.partition("=")
            if not eq or name.strip() not in known:
                raise ValueError(f"{WATCHDOG_ENV}: expected name=seconds with name one of {', '.join(known)}; "
                                 f"got {item!r}")
            try:
                values[name.strip()] = float(raw)
            except ValueError:
                raise ValueError(f"{WATCHDOG_ENV}: {name.strip()} must be a number of seconds, not {raw!r}") from None
            if values[name.strip()] <= 0:
                raise ValueError(f"{WATCHDOG_ENV}: {name.strip()} must be above 0")
        return cls(**values)


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, all its threads (None once it is gone, or without /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields_ = fh.read().rpartition(b")")[2].split()
        return (int(fields_[11]) + int(fields_[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return None


class _Watch:
    """What the supervisor last saw of one busy or loading worker."""

    def __init__(self, pid: int, progress: int):
        self.pid, self.progress = pid, progress
        self.cpu = cpu_seconds(pid)
        self.cpu_at_step = self.cpu   # CPU time when the counter last moved
        self.still = 0.0              # observed seconds without a CPU tick
        self.seen = time.monotonic()

    def hung(self, progress: int, dog: Watchdog, cpu_budget: float) -> str | None:
        now, cpu = time.monotonic(), cpu_seconds(self.pid)
        if cpu is None or self.cpu is None:
            return None   # gone (its sentinel reports the death) or no /proc
        # Count only time the supervisor was running to look (a suspended laptop or a stopped job is no hang).
        gap = min(now - self.seen, 2 * dog.poll_s)
        self.seen = now
        self.still = self.still + gap if cpu == self.cpu else 0.0
        self.cpu = cpu
        if progress != self.progress:
            self.progress, self.cpu_at_step = progress, cpu
        if self.still >= dog.stopped_s:
            return f"no CPU time for {self.still:.0f} s: stopped or blocked"
        if cpu - self.cpu_at_step >= cpu_budget:
            return f"{cpu - self.cpu_at_step:.0f} CPU-seconds without a decode step: stuck in a loop"
        return None


@dataclass
class UnitOutcome:
    unit: Any
    completions: list | None      # None when the unit failed
    failure: str = ""


def crash_if_asked(unit_id: str, faults: str) -> None:
    """Test-only fault injection (tests/test_faults*.py, tests/test_reliability_workers.py, tests/test_ray.py).
    `faults` is WorkerSpec.test_faults, which the driver fills from RADBATCH_TEST_CRASH_UNIT (settings.py) and
    which is empty in production. "0:8,0:16" kills the worker with SIGKILL when it receives one of these units
    ("load": while loading). Options after ';': `segv` crashes in native code instead, `stop` stops the worker
    (SIGSTOP to itself), `spin` loops burning CPU without a decode step, `raise` raises RuntimeError as a broken
    engine would; `once=PATH` does it only while PATH does not exist (it is created first)."""
    if not faults:
        return
    units, *opts = faults.split(";")
    if unit_id not in units.split(","):
        return
    flags = dict(o.partition("=")[::2] for o in opts)
    if flags.get("once"):
        if os.path.exists(flags["once"]):
            return
        open(flags["once"], "w").close()
    if "raise" in flags:
        raise RuntimeError("test fault")
    if "stop" in flags:
        os.kill(os.getpid(), signal.SIGSTOP)
        return
    if "spin" in flags:
        while True:
            pass
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


def _worker_main(conn, spec: WorkerSpec, needed: set[str], progress=None) -> None:
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the supervisor died before the death signal was armed
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor handles Ctrl-C and stops us
    from radbatch.engines.build import build_engines, run_unit
    from radbatch.engines.spec import watch_progress
    watch_progress(progress)
    try:
        crash_if_asked("load", spec.test_faults)
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
        try:
            crash_if_asked(unit_id, spec.test_faults)
            reply = ("done", unit_id, run_unit(engines, requests))
        except Exception as exc:
            reply = ("unit_error", unit_id, f"{type(exc).__name__}: {exc}", type(exc).__name__)
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
        self.progress = ctx.RawValue("Q", 0)   # decode steps, bumped by the worker's engine
        self.proc = ctx.Process(target=_worker_main, args=(child, spec, needed, self.progress), daemon=True)
        with _main_not_reimported():
            self.proc.start()
        child.close()
        self.ready = False
        self.unit = None  # (unit_id, unit, requests) in flight
        self.watch: _Watch | None = None


class Pool:
    def __init__(self, spec: WorkerSpec, workers: int, needed: set[str], max_attempts: int = 3,
                 watchdog: Watchdog | None = None, quiet: bool = True):
        self.spec, self.n, self.needed, self.max_attempts = spec, workers, needed, max_attempts
        self.watchdog, self.quiet = watchdog or Watchdog(), quiet
        self.ctx = mp.get_context("spawn")
        self.workers: list[_Worker] = []

    def start(self) -> None:
        """Start all workers and wait until each has loaded its models (errors are fatal here)."""
        self.workers = [_Worker(self.ctx, self.spec, self.needed) for _ in range(self.n)]
        for w in self.workers:
            self._await_ready(w)

    def _await_ready(self, w: _Worker) -> None:
        watch, dog = _Watch(w.proc.pid, 0), self.watchdog
        while not (ready := wait([w.conn, w.proc.sentinel], timeout=dog.poll_s)):
            why = watch.hung(0, dog, dog.load_cpu_s)
            if why:
                self._kill(w)
                self.close()
                raise EngineError(f"A worker hung while loading its model(s) ({why}) and was killed; the model "
                                  "file may sit on a stalled file system, or the machine is out of memory. Limits: "
                                  f"{WATCHDOG_ENV} (docs/reliability.md).")
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
                    w.watch = _Watch(w.proc.pid, w.progress.value)
                    try:
                        w.conn.send((item[0], item[2]))
                    except OSError:
                        pass  # it died while idle: its sentinel is ready and _collect retries the unit
            busy = [w for w in self.workers if w.unit is not None]
            if not busy:
                return  # every idle worker was offered work: nothing pending, source exhausted
            by_handle = {h: w for w in busy for h in (w.conn, w.proc.sentinel)}
            ready = wait(list(by_handle), timeout=self.watchdog.poll_s)
            for handle in ready:
                w = by_handle[handle]
                if w.unit is not None and w in self.workers:
                    outcome = self._collect(w, handle, attempts, pending)
                    if outcome is not None:
                        yield outcome
            for w in busy:   # a worker whose reply or death is already here is not judged
                if w.unit is None or w not in self.workers or w.conn in ready or w.proc.sentinel in ready:
                    continue
                why = w.watch.hung(w.progress.value, self.watchdog, self.watchdog.spin_cpu_s)
                if why:
                    self._kill(w)
                    outcome = self._lost(w, attempts, pending, f"hung ({why})",
                                         f"worker hung on unit {w.unit[0]} ({why}); killed it {{n}} times")
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
                # An engine that raises on unit after unit is as broken as one that dies on them.
                self._give_up(f"The engine raised {msg[3]} on {{n}} units in a row (last: unit {unit_id})")
                return UnitOutcome(unit, None, f"engine error: {msg[2]}")
        # The worker died holding this unit.
        w.proc.join(timeout=5)
        code = w.proc.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return self._lost(w, attempts, pending, f"died ({how})", f"worker died ({how}) on this unit {{n}} times")

    def _lost(self, w: _Worker, attempts: dict, pending: deque, how: str, failure: str) -> UnitOutcome | None:
        """A worker died or was killed holding its unit: replace it, retry the unit a bounded number of times,
        then fail the unit's rows with the reason."""
        unit_id, unit, requests = w.unit
        w.unit = None
        self._replace(w)
        attempts[unit_id] = attempts.get(unit_id, 0) + 1
        if attempts[unit_id] < self.max_attempts:
            pending.append((unit_id, unit, requests))
            return None
        self._give_up(f"Workers {how} on {{n}} units in a row, {self.max_attempts} tries each")
        return UnitOutcome(unit, None, failure.format(n=attempts[unit_id]))

    def _give_up(self, what: str) -> None:
        """One more unit given up on; stop the run after MAX_FAILED_UNITS_IN_A_ROW with no unit done between."""
        self._failed_in_a_row += 1
        if self._failed_in_a_row >= MAX_FAILED_UNITS_IN_A_ROW:
            self.close()
            raise EngineError(what.format(n=self._failed_in_a_row) + ": the model, adapter or engine is broken, not "
                              "the reports. Parts already written are kept; fix the cause and rerun the same "
                              "command to resume.")

    def _kill(self, w: _Worker) -> None:
        """SIGKILL, not SIGTERM: a stopped process keeps SIGTERM pending and never dies of it."""
        if not self.quiet:
            unit = f" on unit {w.unit[0]}" if w.unit else " while loading"
            print(f"radbatch: worker {w.proc.pid} hung{unit}; killing it (SIGKILL)", file=sys.stderr, flush=True)
        try:
            w.proc.kill()
        except (OSError, ValueError):
            pass
        w.proc.join(timeout=10)

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
