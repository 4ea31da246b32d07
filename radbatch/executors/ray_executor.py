"""`--executor ray`: the annotate job as a Ray Data pipeline, on this machine or across a Ray cluster.

    read (UnitDatasource: pending work units, pyarrow, from the file system every node sees)
      -> repartition(target_num_rows_per_block=1)   streaming: one work unit per block, so every actor gets work
      -> map_batches(UnitAnnotator, actor pool)      engines built once per actor; rows.prepare/run_unit/assemble
      -> the driver writes each unit's part table through the local executor's RunStore, then the same finalize

A dataset row is a whole work unit of the local executor (ray_data.py), so units are never cut, and the output
(rows, columns, types, annotations, per-row errors and statuses, metadata), the run key and resume are those of
the local executor. Ray Data does not keep order; finalize sorts by row identity as it does for local runs.

Every node that runs annotators or read tasks must see the archive and the models at the driver's paths; that
is checked on each node before any work starts. Ray is imported lazily: the core install and `import
radbatch.cli.main` never import it.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from radbatch import __version__
from radbatch.annotation.job import Job, Parallelism
from radbatch.annotation.plan import worker_memory
from radbatch.errors import EngineError, InputError
from radbatch.heads.models import sha256_file

# Each actor reserves this share of the CPUs it uses, so the actors of a node reserve at most half of it:
# actors that reserve whole CPUs leave none for any other Ray task on a small node (a Ray Data read task needs
# one), and whatever waits for it waits forever. llama.cpp still runs `threads` threads.
CPU_SHARE = 0.5
START_TIMEOUT_S = 600     # placing the annotators and loading their models
# Ray's own tasks (reads, the streaming repartition) take a whole CPU each; at least one node keeps one free.
TASK_CPUS = 1.0
# A unit whose annotator dies (SIGKILL, OOM, a crash inside llama.cpp) is retried on a restarted annotator;
# after this many tries its rows come back failed with the reason, as in the local executor, and the run goes
# on. Giving up on more than `_tolerated(units)` units stops the run (parts written are kept; the same command
# resumes): then the model, adapter or node is broken, not the reports.
MAX_ATTEMPTS = 3
GIVE_UP = f"annotator died on this unit {MAX_ATTEMPTS} times (Ray gave up on it; its logs say how it died)"
MAX_RAISED_IN_A_ROW = 3  # units whose engine raised, with no unit done between: stop (pool.MAX_FAILED_UNITS_IN_A_ROW)
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


def node_report(files: list[tuple[str, str, int, str | None]], memory_per_actor: int, actors: int,
                s3=None) -> dict:
    """Runs on one node (a tiny Ray task): what this node lacks to run the annotators. files: (what, path,
    size, sha256 or None) as on the driver; a model copy with other bytes would silently change the annotations
    (sha256 is cached per node by path, size and mtime, so a model is hashed once per node). Input files are
    checked by size only (hashing the archive on every node would read it once more per node)."""
    import importlib.util

    from radbatch.annotation.plan import _available_memory
    from radbatch.archive import storage
    from radbatch.heads.models import sha256_file
    problems = []
    if s3 is not None:
        storage.use(s3)
    for what, path, size, sha in files:
        p = Path(path)
        try:
            if storage.is_uri(path):   # an object: this node must reach it with its own credentials
                try:
                    st = storage.stat(path)
                except InputError as exc:   # no credentials here, bucket unreachable, ...
                    problems.append(str(exc))
                    continue
                if st is None or st[0] != size:
                    problems.append(f"{what} object {path} " + ("not found" if st is None else
                                    f"has {st[0]} bytes here, {size} on the driver"))
                continue
            if not p.is_file():
                problems.append(f"{what} file not found: {path}")
                continue
            here = p.stat().st_size
            if here != size:
                problems.append(f"{what} file {path} has {here} bytes here, {size} on the driver "
                                "(a partial or different copy)")
                continue
            here_sha = sha256_file(path) if sha else None
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
    """Run `node_report` once on every node that will run annotators or read tasks; one EngineError lists every
    problem."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from radbatch.archive import storage
    remote = ray.remote(num_cpus=0, max_retries=0)(node_report)
    refs = {remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(s.node_id, soft=False))
            .remote(files, memory_per_actor, s.workers, storage.settings()): s for s in slots}
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
                          "\nEvery node needs the input archive and the GGUF and adapter files at the driver's paths (a shared file "
                          "system, or a copy staged there before the run) and the same radbatch install.")


def _gist(exc: BaseException) -> str:
    """The last line of an exception's text: Ray puts the remote traceback first and the error last."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]


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




# -- the run ---------------------------------------------------------------------------------------------------
def reservation(slots: list[NodeSlots]) -> float:
    """CPUs each annotator reserves: the smallest per-node share, lowered where needed so that at least one node
    keeps TASK_CPUS free for Ray Data's read and repartition tasks (else they wait forever)."""
    share = min(s.actor_cpus for s in slots)
    if any(s.cpus - s.workers * share >= TASK_CPUS for s in slots):
        return share
    room = max((s.cpus - TASK_CPUS) / s.workers for s in slots)
    if room <= 0:
        raise EngineError("no Ray node has more than one CPU: Ray Data needs one CPU free for its read tasks "
                          "besides the annotators. Add a node with 2 or more CPUs.")
    return round(room, 4)


class RayExecutor:
    """The job as a Ray Data pipeline: `resolve` connects and lays the annotators out over the nodes (what it
    returns is what runs), `parts` checks the nodes and runs the pipeline, `close` disconnects."""

    def __init__(self, job: Job, cache):
        """cache: the driver's result_store.RunCache (its store is None without --cache)."""
        self.job, self.cache, self.ray, self.slots = job, cache, None, []
        self.ran = Parallelism(0, 0)

    def resolve(self) -> Parallelism:
        if not len(self.job.pending):
            return self.ran   # nothing to annotate: no Ray, no annotator
        o = self.job.plan.opts
        self.ray = connect(o.ray_address)
        self.slots = layout(self.ray.nodes(), o.workers, o.threads)
        if not self.slots:
            raise EngineError("the Ray cluster has no alive node with CPUs to run annotators on")
        # One WorkerSpec for all annotators: --threads, else the smallest node's per-actor threads.
        self.ran = Parallelism(sum(s.workers for s in self.slots), o.threads or min(s.threads for s in self.slots))
        return self.ran

    def parts(self) -> Iterator[tuple[int, str, object]]:
        """(file index, unit id, part table) for every pending unit, as units finish (not in input order)."""
        if self.ray is not None:   # None: nothing pending, Ray never started
            yield from _run(self.ray, self.job, self.slots, self.ran, self.cache)

    def close(self) -> None:
        if self.ray is not None:
            self.ray.shutdown()  # disconnects; stops the Ray this run started, never a cluster's
            self.ray = None


def _store_server(ray, cache):
    """--cache under Ray: one StoreServer actor on the driver's node (where the --cache folder is), which every
    annotator asks for stored results and sends new ones to; None without --cache."""
    if cache.store is None:
        return None
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from radbatch.annotation.result_store import StoreServer
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    server = ray.remote(num_cpus=0, max_restarts=0)(StoreServer).options(scheduling_strategy=here)
    return server.remote(str(cache.store.folder))


def _stop_server(ray, server) -> None:
    """Close the store (its last transaction is already committed; this checkpoints the WAL), then end the actor."""
    if server is None:
        return
    try:
        ray.get(server.close.remote(), timeout=60)
    except Exception:   # an actor that is gone has nothing left to close
        pass
    ray.kill(server)


def _run(ray, job: Job, slots: list[NodeSlots], ran: Parallelism, cache) -> Iterator[tuple[int, str, object]]:
    import numpy as np
    from ray.data import ActorPoolStrategy, DataContext

    from radbatch.archive.reading import absolute

    from .ray_data import UnitAnnotator, UnitDatasource, from_ipc
    plan, units, priors_path = job.plan, job.pending, job.priors_path
    o = plan.opts
    models = [plan.models[n] for n in sorted(plan.models)]
    named = [(f"model {m.name!r}", m.path) for m in models if not m.is_rules]  # rules: code, not a file
    named += [(f"adapter of model {m.name!r}", m.adapter) for m in models if m.adapter]
    files = [(what, path, Path(path).stat().st_size, sha256_file(path)) for what, path in named]
    wanted = {i for i, starts in units.starts.items() if len(starts)}
    files += [("input", absolute(f.path), f.size, None) for f in plan.files if f.index in wanted]
    if priors_path is not None:   # read tasks read the units' prior reports from the work directory
        files.append(("prior reports", os.path.abspath(priors_path), Path(priors_path).stat().st_size, None))
    check_nodes(ray, slots, files, worker_memory(models, o.engine, job.settings.batch) if models else 0)

    threads, actors, cpus = ran.threads, ran.workers, reservation(slots)
    spec = job.worker_spec(threads)
    import logging
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no execution plans and stats on the console
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False            # radbatch's own progress bar counts rows
    ctx.print_on_execution_start = False
    ctx.max_errored_blocks = _tolerated(len(units))  # a block is one unit; Ray drops it after MAX_ATTEMPTS
    # Work starts once every annotator has loaded its models (so all get work), or fails after START_TIMEOUT_S
    # when the cluster cannot place them, instead of waiting forever.
    ctx.wait_for_min_actors_s = START_TIMEOUT_S
    server = _store_server(ray, cache)
    source = UnitDatasource(plan.files, units, o.encoding, o.columns.text_columns(),
                            os.path.abspath(priors_path) if priors_path is not None else None)
    ds = (ray.data.read_datasource(source, override_num_blocks=max(1, actors) * 2)
          .repartition(target_num_rows_per_block=1)
          .map_batches(UnitAnnotator, batch_size=1,
                       fn_constructor_args=(spec, set(plan.models), job.rows, cache.for_annotator(server)),
                       batch_format="pyarrow", zero_copy_batch=True,
                       compute=ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1),
                       num_cpus=cpus, scheduling_strategy="SPREAD", max_restarts=-1,
                       max_task_retries=MAX_ATTEMPTS - 1,
                       runtime_env={"env_vars": _actor_env(threads)}))
    _say(o.quiet, f"ray: {len(slots)} node(s), {actors} annotator(s) of {threads} thread(s), {cpus} CPU reserved "
                  f"each; {len(units)} unit(s) to annotate: " + ", ".join(s.describe() for s in slots))
    per_annotator: Counter = Counter()
    finished = {i: np.zeros(len(starts), dtype=bool) for i, starts in units.starts.items()}
    raised_in_a_row = 0
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
            for row in batch.to_pylist():
                per_annotator[row["annotator"]] += 1
                _add_counts(cache.counts, row)
                index, start = map(int, row["unit"].split(":"))
                finished[index][np.searchsorted(units.starts[index], start)] = True
                yield row["file_index"], row["unit"], from_ipc(row["part"])
                # As the local pool: an engine that raises on unit after unit is broken, not the reports.
                raised_in_a_row = raised_in_a_row + 1 if row["raised"] else 0
                if raised_in_a_row >= MAX_RAISED_IN_A_ROW:
                    raise EngineError(f"The engine raised {row['raised']} on {raised_in_a_row} units in a row "
                                      f"(last: unit {row['unit']}): the model, adapter or engine is broken, not "
                                      "the reports. Parts already written are kept; fix the cause and rerun the "
                                      "same command to resume.")
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except Exception as exc:
        if isinstance(exc, (EngineError, InputError)) or type(exc).__module__.startswith("radbatch"):
            raise
        raise EngineError(f"the Ray pipeline failed: {_gist(exc)}. Parts already written are kept; fix the "
                          "cause and rerun the same command to resume.") from None
    finally:
        _stop_server(ray, server)
    _say(o.quiet, "ray: units per annotator: " +
         ", ".join(f"{name}: {n}" for name, n in sorted(per_annotator.items())))
    dropped = [u for i, starts in units.starts.items() for u in units.refs(i, starts[~finished[i]])]
    if dropped:
        _say(o.quiet, f"ray: gave up on {len(dropped)} unit(s) after {MAX_ATTEMPTS} tries each: "
                      f"{', '.join(u.unit_id for u in dropped)}; their rows are marked failed")
        yield from failed_parts(job, dropped, GIVE_UP)


def _add_counts(summary, row: dict) -> None:
    """A unit's store counters (result_store.CacheCounts.take) into the run's summary."""
    summary.decoded_requests += row["decoded"]
    summary.reused_results += row["reused"]
    summary.rejected_results += row["rejected"]
    summary.store_failed |= row["store_failed"]


def _tolerated(units: int) -> int:
    """Units Ray may give up on before the run stops: 3, or 1% of a large run's units."""
    return max(MAX_ATTEMPTS, units // 100)


def _actor_env(threads: int) -> dict[str, str]:
    """Settings reach the actors in the WorkerSpec; the environment only pins OpenMP's threads."""
    return {"OMP_NUM_THREADS": str(threads)}


def failed_parts(job: Job, units: list, failure: str) -> Iterator[tuple[int, str, object]]:
    """Part tables for units that could not be annotated: the units are read again here, on the driver, and
    every row comes out with status failed and `failure` as each head's error, as the local executor does."""
    from .ray_data import UnitPriors, unit_tables
    o = job.plan.opts
    for f in job.plan.files:
        mine = sorted((u for u in units if u.file_index == f.index), key=lambda u: u.start)
        if not mine:
            continue
        priors = UnitPriors(job.priors_path, f.index, mine[0].start, mine[-1].start + mine[-1].rows)
        for u, table in unit_tables(f, mine, o.encoding, o.columns.text_columns(), o.unit_size):
            work = job.rows.prepare(f.index, f.path, u.start, table, priors.take(u.start, u.rows))
            yield f.index, u.unit_id, job.rows.assemble(work, None, failure)


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)
