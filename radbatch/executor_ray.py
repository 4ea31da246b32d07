"""`--executor ray`: the worker pool as Ray actors, on this machine or across a Ray cluster.

Only the model work moves. The driver still reads the archive, cuts work units, assembles rows and writes
parts through the same RunStore, so the output, the run key and resume are those of the local executor. Each
actor builds its engines once from the WorkerSpec and runs whole units with `engine.run_unit`, exactly like a
local worker process; `RayPool` has `Pool`'s interface (start / run / close) and its failure rules: an actor
that dies on a unit is replaced and the unit retried up to `max_attempts` times, a load failure is fatal.

So only the models must be on every node, at the driver's paths; that is checked on each node before any
work starts. Ray is imported lazily: the core install and `import radbatch.cli` never import it.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

from . import __version__
from .engine import WorkerSpec
from .errors import EngineError, InputError
from .models import sha256_file
from .plan import worker_memory
from .pool import MAX_FAILED_UNITS_IN_A_ROW, UnitOutcome

# Each actor reserves this share of the CPUs it uses, so the actors of a node reserve at most half of it:
# actors that reserve whole CPUs leave none for any other Ray task on a small node (a Ray Data read task needs
# one), and whatever waits for it waits forever. llama.cpp still runs `threads` threads.
CPU_SHARE = 0.5
START_TIMEOUT_S = 600.0   # loading the models, and waiting for a node's CPUs to become free
CHECK_TIMEOUT_S = 600.0   # the first check on a node hashes each model there (cached after)


@dataclass(frozen=True)
class NodeSlots:
    """The annotators one node runs."""

    node_id: str
    ip: str
    cpus: float
    workers: int        # actors on this node
    threads: int        # llama.cpp threads per actor
    actor_cpus: float   # CPUs each actor reserves in Ray's accounting

    def describe(self) -> str:
        return f"{self.ip} {self.workers} x {self.threads} thread(s)"


def layout(nodes: list[dict], workers: int | None, threads: int | None) -> list[NodeSlots]:
    """Per-node actor counts from `ray.nodes()`. --workers / --threads are per node; unset, they follow the
    local default (2 threads per actor, one actor per 2 CPUs). Nodes without CPUs (a head started with
    --num-cpus=0) run no actors."""
    out = []
    for n in nodes:
        cpus = float(n.get("Resources", {}).get("CPU", 0))
        if not n.get("Alive") or cpus <= 0:
            continue
        t = threads or max(1, min(2, int(cpus)))
        w = workers or max(1, int(cpus) // t)
        share = round(max(0.0001, min(t, cpus / w) * CPU_SHARE), 4)
        out.append(NodeSlots(n["NodeID"], n.get("NodeManagerAddress", "?"), cpus, w, t, share))
    return out


def node_report(files: list[tuple[str, str, int, str]], memory_per_actor: int, actors: int) -> dict:
    """Runs on one node (a tiny Ray task): what this node lacks to run the annotators. files: (what, path,
    size, sha256) as on the driver; a copy with other bytes would silently change the annotations (sha256 is
    cached per node by path, size and mtime, so a model is hashed once per node)."""
    import importlib.util
    from .models import sha256_file
    from .plan import _available_memory
    problems = []
    for what, path, size, sha in files:
        p = Path(path)
        try:
            if not p.is_file():
                problems.append(f"{what} file not found: {path}")
                continue
            here = p.stat().st_size
            if here != size:
                problems.append(f"{what} file {path} has {here} bytes here, {size} on the driver "
                                "(a partial or different copy)")
                continue
            here_sha = sha256_file(path)
            if here_sha != sha:
                problems.append(f"{what} file {path} differs from the driver's (sha256 {here_sha[:12]}... here, "
                                f"{sha[:12]}... on the driver)")
        except OSError as exc:
            problems.append(f"{what} file {path} cannot be read: {exc.strerror}")
    if importlib.util.find_spec("llama_cpp") is None:
        problems.append("llama-cpp-python is not installed")
    avail = _available_memory()
    need = memory_per_actor * actors
    if avail and need > avail:
        problems.append(f"{actors} annotator(s) need about {need / 2**30:.1f} GiB, {avail / 2**30:.1f} GiB is "
                        "available (use fewer --workers)")
    return {"host": socket.gethostname(), "radbatch": __version__, "problems": problems}


def check_nodes(ray, slots: list[NodeSlots], files: list[tuple[str, str, int, str]], memory_per_actor: int) -> None:
    """Run `node_report` once on every node that will run annotators; one EngineError lists every problem."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    remote = ray.remote(num_cpus=0, max_retries=0)(node_report)
    refs = {remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(s.node_id, soft=False))
            .remote(files, memory_per_actor, s.workers): s for s in slots}
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=CHECK_TIMEOUT_S)
    problems = []
    for ref, s in refs.items():
        where = f"Ray node {s.ip} (node id {s.node_id})"
        if ref not in ready:
            problems.append(f"{where}: did not answer the model check within {CHECK_TIMEOUT_S:.0f} s")
            continue
        try:
            report = ray.get(ref)
        except Exception as exc:  # typically radbatch is not importable there
            problems.append(f"{where}: the check failed: {_gist(exc)} (is radbatch {__version__} "
                            "installed on that node?)")
            continue
        where = f"Ray node {s.ip} (node id {s.node_id}, host {report['host']})"
        if report["radbatch"] != __version__:
            problems.append(f"{where}: radbatch {report['radbatch']} is installed, the driver runs {__version__}")
        problems += [f"{where}: {p}" for p in report["problems"]]
    if problems:
        raise EngineError("a Ray node cannot run the annotators:\n" + "\n".join(f"  - {p}" for p in problems) +
                          "\nEvery node needs the GGUF and adapter files at the driver's paths (a shared file "
                          "system, or a copy staged there before the run) and the same radbatch install.")


def _gist(exc: BaseException) -> str:
    """The last line of an exception's text: Ray puts the remote traceback first and the error last."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]


class Annotator:
    """A Ray actor: a local worker process's life (engines built once, whole units in, completions out)."""

    def __init__(self, spec: WorkerSpec, needed: set[str]):
        from .engine import build_engines
        self.engines, self.error = None, ""
        try:
            self.engines = build_engines(spec, needed)
        except Exception as exc:  # reported by ready(); never the traceback of a report
            self.error = f"{type(exc).__name__}: {exc}"

    def ready(self) -> tuple[str, int]:
        return self.error, os.getpid()

    def run(self, requests: list) -> tuple[str, Any]:
        from .engine import run_unit
        try:
            return "done", run_unit(self.engines, requests)
        except Exception as exc:
            return "unit_error", f"{type(exc).__name__}: {exc}"


@dataclass
class _Slot:
    node: NodeSlots
    actor: Any = None
    item: tuple | None = None     # (unit_id, unit, requests) in flight
    ref: Any = None


def connect(address: str | None):
    """Ray, connected: to `address`, else RAY_ADDRESS, else a local Ray started for this run only.
    Usage statistics are off and the dashboard is not started (nothing leaves the machine); workers' logs
    stay in the node's log files."""
    import logging
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        # A run-local Ray advertises the loopback address instead of the machine's network address, and
        # requires a token made for this run only (Ray's default would save one in ~/.ray/auth_token, which
        # then switches on token authentication for every later `ray start` on the machine).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        if "RAY_AUTH_MODE" not in os.environ:
            os.environ["RAY_AUTH_MODE"] = "token"
            os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray on the driver and every node: pip install 'radbatch[ray]' "
                         "(ray[data]==2.60.*)") from None
    _check_reachable(address)
    quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
    try:
        if address is None:
            ray.init(address="local", include_dashboard=False, num_cpus=os.cpu_count() or 1, **quiet)
        else:
            ray.init(address=address, **quiet)
    except Exception as exc:
        where = f"at {address}" if address else "locally"
        raise EngineError(f"cannot start or reach Ray {where}: {_gist(exc)}. Start a cluster with "
                          "`ray start --head`, and check --ray-address / RAY_ADDRESS.") from None
    return ray


def _check_reachable(address: str | None) -> None:
    """Fail in seconds on a host:port where nothing listens (Ray itself retries for about two minutes)."""
    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray-address {address!r} is not 'auto' or host:port (e.g. head-node:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as exc:
        raise EngineError(f"no Ray cluster answers at {address}: {exc.strerror or exc}. Start one with "
                          "`ray start --head --port=6379` on the head node, and check --ray-address / "
                          "RAY_ADDRESS.") from None


class RayPool:
    """`Pool`'s interface over Ray actors: `workers` actors of `threads` threads on every node with CPUs."""

    def __init__(self, spec: WorkerSpec, needed: set[str], workers: int | None = None,
                 threads: int | None = None, address: str | None = None, quiet: bool = False,
                 max_attempts: int = 3):
        self.spec, self.needed, self.workers, self.threads = spec, needed, workers, threads
        self.address, self.quiet, self.max_attempts = address, quiet, max_attempts
        self.ray = None
        self._actor_class = None
        self._failed_in_a_row = 0
        self.slots: list[_Slot] = []

    # -- start -----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect, check every node, start the actors and wait until each has loaded its models."""
        self.ray = connect(self.address)
        nodes = layout(self.ray.nodes(), self.workers, self.threads)
        if not nodes:
            raise EngineError("the Ray cluster has no alive node with CPUs to run annotators on")
        models = [self.spec.models[n] for n in sorted(self.needed)]
        named = [(f"model {m.name!r}", m.path) for m in models]
        named += [(f"adapter of model {m.name!r}", m.adapter) for m in models if m.adapter]
        files = [(what, path, Path(path).stat().st_size, sha256_file(path)) for what, path in named]
        check_nodes(self.ray, nodes, files, worker_memory(models))
        self.slots = [_Slot(n) for n in nodes for _ in range(n.workers)]
        self._say(f"ray: {len(nodes)} node(s), {len(self.slots)} annotator(s): " +
                  ", ".join(n.describe() for n in nodes))
        for slot in self.slots:
            self._spawn(slot)
        self._await_ready(self.slots)

    def _spawn(self, slot: _Slot) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        n = slot.node
        if self._actor_class is None:
            self._actor_class = self.ray.remote(Annotator)
        actor = self._actor_class.options(
            num_cpus=n.actor_cpus, max_restarts=0, max_task_retries=0, max_concurrency=1,
            scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False),
            runtime_env={"env_vars": {"OMP_NUM_THREADS": str(n.threads)}})
        slot.actor = actor.remote(replace(self.spec, threads=n.threads), self.needed)

    def _await_ready(self, slots: list[_Slot]) -> None:
        refs = {s.actor.ready.remote(): s for s in slots}
        ready, _ = self.ray.wait(list(refs), num_returns=len(refs), timeout=START_TIMEOUT_S)
        for ref, s in refs.items():
            where = f"Ray node {s.node.ip} (node id {s.node.node_id})"
            if ref not in ready:
                raise EngineError(f"an annotator on {where} did not start within {START_TIMEOUT_S:.0f} s: it "
                                  f"reserves {s.node.actor_cpus} CPU(s), which the node may not have free (other "
                                  "Ray work?), or loading the model(s) is that slow. Use fewer --workers.")
            try:
                error, _pid = self.ray.get(ref)
            except Exception as exc:
                raise EngineError(f"an annotator on {where} died while loading its model(s): {_gist(exc)}. "
                                  "The GGUF or adapter file may be corrupt or truncated there, or memory ran "
                                  "out.") from None
            if error:
                raise EngineError(f"an annotator on {where} could not load its model(s): {error}")

    # -- run -------------------------------------------------------------------------------------------
    def run(self, units: Iterable[tuple[str, Any, list]]) -> Iterator[UnitOutcome]:
        """units: (unit_id, unit, requests). Yields outcomes as units finish (not in input order)."""
        source, pending, attempts = iter(units), deque(), {}
        self._failed_in_a_row = 0
        while True:
            for slot in self.slots:
                if slot.item is None and (item := pending.popleft() if pending else next(source, None)):
                    slot.item, slot.ref = item, slot.actor.run.remote(item[2])
            busy = {s.ref: s for s in self.slots if s.item is not None}
            if not busy:
                return
            ready, _ = self.ray.wait(list(busy), num_returns=1)
            for ref in ready:
                outcome = self._collect(busy[ref], attempts, pending)
                if outcome is not None:
                    yield outcome

    def _collect(self, slot: _Slot, attempts: dict, pending: deque) -> UnitOutcome | None:
        from ray.exceptions import RayActorError
        unit_id, unit, requests = slot.item
        ref, slot.item, slot.ref = slot.ref, None, None
        try:
            kind, value = self.ray.get(ref)
        except RayActorError as exc:
            reason = _gist(exc).split(" Some common causes")[0]
        except Exception as exc:  # the call itself failed (serialization, ...): this unit's problem
            return UnitOutcome(unit, None, f"engine error: {_gist(exc)}")
        else:
            if kind == "done":
                self._failed_in_a_row = 0
                return UnitOutcome(unit, value)
            return UnitOutcome(unit, None, f"engine error: {value}")
        # The actor (or its node) died holding this unit: replace it, retry the unit a bounded number of times.
        attempts[unit_id] = attempts.get(unit_id, 0) + 1
        self._say(f"ray: an annotator died on {slot.node.ip} (unit {unit_id}, attempt {attempts[unit_id]}): "
                  f"{reason}; replaced it")
        self._replace(slot)
        if attempts[unit_id] < self.max_attempts:
            pending.append((unit_id, unit, requests))
            return None
        self._failed_in_a_row += 1
        if self._failed_in_a_row >= MAX_FAILED_UNITS_IN_A_ROW:  # as in Pool: a broken model, not bad reports
            raise EngineError(f"annotators died on {self._failed_in_a_row} units in a row, {self.max_attempts} tries "
                              f"each ({reason}): the model, adapter or engine is broken, not the reports. Parts "
                              "already written are kept; fix the cause and rerun the same command to resume.")
        return UnitOutcome(unit, None, f"annotator died on this unit {attempts[unit_id]} times ({reason})")

    def _replace(self, slot: _Slot) -> None:
        """A fresh actor on the same node. A slot whose node is gone (now, or while its new actor starts) is
        dropped; the run goes on while any annotator is left."""
        try:
            self.ray.kill(slot.actor)
        except Exception:
            pass
        if self._node_alive(slot.node):
            self._spawn(slot)
            try:
                self._await_ready([slot])
                return
            except EngineError:
                if self._node_alive(slot.node):
                    raise  # the node is there but a fresh annotator cannot load: fatal, as at start
        self.slots.remove(slot)
        self._say(f"ray: node {slot.node.ip} ({slot.node.node_id}) is gone; {len(self.slots)} annotator(s) left")
        if not self.slots:
            raise EngineError("every Ray node that ran annotators is gone. Rerun the same command to resume.")

    def _node_alive(self, node: NodeSlots) -> bool:
        return any(n["NodeID"] == node.node_id and n.get("Alive") for n in self.ray.nodes())

    # -- close -----------------------------------------------------------------------------------------
    def close(self) -> None:
        if self.ray is None:
            return
        for slot in self.slots:
            try:
                self.ray.kill(slot.actor)
            except Exception:
                pass
        self.slots = []
        self.ray.shutdown()  # disconnects; stops the Ray this run started, never a cluster's
        self.ray = None

    def _say(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)
