"""`--executor ray` (a Ray Data pipeline) on a real two-node Ray cluster on this machine, against the local executor.

The cluster is two `ray start --block` processes (a head with 2 CPUs, a node with 1) in their own temp dir;
teardown kills exactly the process trees this module started, even when a test fails. Usage statistics are
off and the cluster requires a token made for this module (RAY_AUTH_TOKEN, never written to ~/.ray). Both
nodes are given 127.0.0.1; Ray swaps it for this machine's own address (it refuses loopback for a multi-node
cluster), so all traffic stays on this machine.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import REPORTS, write_reports

from radbatch.cli.main import cli
from radbatch.executors.ray_executor import CPU_SHARE, GIVE_UP, TASK_CPUS, layout, reservation
from radbatch.annotation.output import read_provenance

# Only the tests that start Ray or import radbatch.executors.ray_data need the `ray` extra; layout, reservation and the
# CLI's checks run without it.
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="the `ray` extra is not installed")

BIN = Path(sys.executable).parent
TASKS = "m_staging,rads_assignment"
# The default routing sends both heads to the rules member; these tests are about llama.cpp actors (model
# files checked per node, actors loading and dying), so they pin an LLM member.
MODEL = "smollm2-ft-a"
ROWS = 28
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
       "PYTHONUNBUFFERED": "1"}
ENV.pop("RAY_ADDRESS", None)


# -- the cluster ------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(roots: list[int]) -> list[int]:
    """The processes under `roots` (Ray's gcs_server, raylet, workers, ...), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Cluster:
    def __init__(self, tmp: Path):
        self.tmp, self.port, self.procs = tmp, _free_port(), []
        self.address = f"127.0.0.1:{self.port}"

    def _start(self, name: str, args: list[str]) -> None:
        log = open(self.tmp / f"{name}.log", "w")
        self.procs.append(subprocess.Popen(
            [str(BIN / "ray"), "start", "--block", "--node-ip-address=127.0.0.1", f"--temp-dir={self.tmp / name}",
             f"--dashboard-agent-listen-port={_free_port()}", *args],
            env=ENV, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def start(self) -> None:
        self._start("head", ["--head", f"--port={self.port}", "--num-cpus=2", "--include-dashboard=false",
                             "--disable-usage-stats", f"--dashboard-port={_free_port()}"])
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                break
            except OSError:
                assert self.procs[0].poll() is None and time.monotonic() < deadline, \
                    (self.tmp / "head.log").read_text()
                time.sleep(0.2)
        self._start("node", [f"--address={self.address}", "--num-cpus=1"])
        wait = ("import ray, time; ray.init(address=%r, log_to_driver=False)\n"
                "while sum(n['Alive'] for n in ray.nodes()) < 2: time.sleep(0.2)" % self.address)
        r = subprocess.run([sys.executable, "-c", wait], env=ENV, timeout=90, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:] + (self.tmp / "node.log").read_text()[-2000:]

    def actor_pids(self) -> list[int]:
        return [p for p in _tree([p.pid for p in self.procs])
                if Path(f"/proc/{p}/cmdline").exists() and b"UnitAnnotator" in Path(f"/proc/{p}/cmdline").read_bytes()]

    def stop(self) -> None:
        _kill(_tree([p.pid for p in self.procs]))  # Ray's workers exit when their raylet is gone
        for p in self.procs:
            p.wait(timeout=10)
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    tmp = Path(tempfile.mkdtemp(prefix="rbray-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    c = Cluster(tmp)
    try:
        c.start()
        yield c
    finally:
        c.stop()


# -- runs -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """One Parquet file of one row group (one Ray block unless radbatch splits it): 4 work units of 8 rows."""
    texts = [REPORTS[i % len(REPORTS)] for i in range(ROWS)]
    texts[5] = "   "   # an empty_text row keeps its status on every executor
    path = write_reports(tmp_path_factory.mktemp("ray_archive") / "a.parquet", texts=texts)
    assert pq.ParquetFile(path).metadata.num_row_groups == 1
    return path


def _cmd(archive: Path, out: Path, *extra: str) -> list[str]:
    return [str(BIN / "radbatch"), "annotate", str(archive), "-o", str(out), "--tasks", TASKS, "--model", MODEL,
            "--workers", "1", "--threads", "1", *extra]


def _run(args: list[str], **env) -> subprocess.CompletedProcess:
    return subprocess.run(args, env={**ENV, **env}, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def local_output(archive, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ray_local") / "local.parquet"
    r = _run(_cmd(archive, out))
    assert r.returncode == 0, r.stderr
    return out


def _same_table(a: Path, b: Path) -> None:
    left, right = pl.read_parquet(a), pl.read_parquet(b)
    assert left.schema == right.schema
    assert left.equals(right)
    assert read_provenance(a)["run_key"] == read_provenance(b)["run_key"]


def _per_annotator(stderr: str) -> dict[str, int]:
    line = re.search(r"ray: units per annotator: (.*)", stderr).group(1)
    return {name: int(n) for name, n in (item.rsplit(": ", 1) for item in line.split(", "))}


@needs_ray
def test_ray_cluster_output_equals_local(cluster, archive, local_output, tmp_path):
    out = tmp_path / "ray.parquet"
    r = _run(_cmd(archive, out, "--executor", "ray", "--ray-address", cluster.address))
    assert r.returncode == 0, r.stderr
    layout_line = re.search(r"ray: \d+ node.*", r.stderr).group(0)  # printed between progress bar updates
    assert re.fullmatch(r"ray: 2 node\(s\), 2 annotator\(s\) of 1 thread\(s\), 0\.5 CPU reserved each; 4 unit\(s\) "
                        r"to annotate: \S+ 1 x 1 thread\(s\), \S+ 1 x 1 thread\(s\)", layout_line), layout_line
    # The one-row-group file was split into one block per unit, and both annotators (one per node) got work.
    counts = _per_annotator(r.stderr)
    assert len(counts) == 2 and sum(counts.values()) == 4 and min(counts.values()) >= 1, counts
    assert len({name.split("/")[0] for name in counts}) == 2, counts
    _same_table(local_output, out)
    df = pl.read_parquet(out)
    assert df.height == ROWS
    assert df["status"].value_counts().sort("status").rows() == [("empty_text", 1), ("ok", ROWS - 1)]
    assert set(df["m_staging__stage"].drop_nulls()) <= {"M0", "M1"}
    assert read_provenance(out)["options"]["executor"] == "ray"
    assert read_provenance(local_output)["options"]["executor"] == "local"
    # What ran is what the start line and the metadata say: --workers is per node, so 2 annotators of 1 thread.
    assert re.search(r"radbatch: 1 input file\(s\), 2 head\(s\), 2 worker\(s\) x 1 thread\(s\)", r.stderr), r.stderr
    assert {k: read_provenance(out)["options"][k] for k in ("workers", "threads")} == {"workers": 2, "threads": 1}
    # The same command again: nothing to do, whichever executor wrote it.
    again = _run(_cmd(archive, out, "--executor", "ray", "--ray-address", cluster.address))
    assert again.returncode == 0 and again.stdout.startswith("Nothing to do:")


def _same_answers(a: pl.DataFrame, b: pl.DataFrame) -> None:
    conf = [c for c in a.columns if c.endswith("__confidence")]
    assert a.schema == b.schema and conf
    assert a.drop(conf).equals(b.drop(conf))
    for c in conf:
        assert (a[c] - b[c]).abs().max() < 1e-5, c


def _store_counts(stdout: str) -> tuple[int, int]:
    m = re.search(r"result store: (\d+) head results reused, (\d+) decoded", stdout)
    assert m, stdout
    return int(m.group(1)), int(m.group(2))


@needs_ray
def test_ray_runs_share_the_result_store_with_the_driver(cluster, archive, local_output, tmp_path):
    """--cache under Ray (one StoreServer actor beside the driver's store): a first Ray run stores every result and
    writes what the local run writes; a Ray rerun over the archive grown by 4 new reports decodes only those rows'
    requests and reuses the rest verbatim; a local run over the same store then decodes nothing."""
    cache = tmp_path / "cache"
    first = _run(_cmd(archive, tmp_path / "r1.parquet", "--executor", "ray", "--ray-address", cluster.address,
                      "--cache", str(cache)))
    assert first.returncode == 0, first.stderr
    # The archive repeats reports, so a unit may take some results from another unit's entries and decode a
    # smaller batch: answers are the same, a confidence may move in its last float bits (docs/performance.md
    # "Agreement": batch make-up changes the kernels).
    _same_answers(pl.read_parquet(local_output), pl.read_parquet(tmp_path / "r1.parquet"))
    reused1, decoded1 = _store_counts(first.stdout)
    requests = reused1 + decoded1   # a report repeated in the archive may be answered by an earlier unit's entry
    assert decoded1 > 0 and requests == 2 * (ROWS - 1), first.stdout   # 2 heads, one empty_text row
    assert {p.name: os.stat(p).st_mode & 0o777 for p in cache.iterdir() if p.name == "results.sqlite"} == \
        {"results.sqlite": 0o600}

    old = pq.read_table(archive)
    new_texts = [f"{REPORTS[i]} Addendum {i}: no change since the prior study." for i in range(4)]
    grown = write_reports(tmp_path / "grown.parquet", texts=old["report_text"].to_pylist() + new_texts)
    second = _run(_cmd(grown, tmp_path / "r2.parquet", "--executor", "ray", "--ray-address", cluster.address,
                       "--cache", str(cache)))
    assert second.returncode == 0, second.stderr
    assert _store_counts(second.stdout) == (requests, 8), second.stdout   # 4 new rows x 2 heads decoded
    grown_out, r1 = pl.read_parquet(tmp_path / "r2.parquet"), pl.read_parquet(tmp_path / "r1.parquet")
    # Reused from the store: where two units of the first run decoded the same report, the store keeps the
    # later one's entry, so a confidence may differ from r1's own in its last bits (as above).
    _same_answers(grown_out.head(ROWS).drop("source_file"), r1.drop("source_file"))
    assert grown_out.tail(4)["status"].to_list() == ["ok"] * 4

    third = _run(_cmd(grown, tmp_path / "r3.parquet", "--cache", str(cache)))
    assert third.returncode == 0, third.stderr
    assert _store_counts(third.stdout) == (requests + 8, 0), third.stdout


@needs_ray
def test_ray_run_records_the_annotators_that_ran_not_the_drivers_default(cluster, archive, tmp_path):
    """Without --workers/--threads the layout follows each node's CPUs (head 2: one actor of 2 threads; node 1:
    one actor of 1 thread; one spec for all: the smallest, 1 thread). The metadata and the start line record those
    2 annotators x 1 thread, not the driver's local default (which this 2-core driver would put at 1 x 2)."""
    out = tmp_path / "default.parquet"
    r = _run([str(BIN / "radbatch"), "annotate", str(archive), "-o", str(out), "--tasks", TASKS, "--model", MODEL,
              "--limit", "8", "--executor", "ray", "--ray-address", cluster.address])
    assert r.returncode == 0, r.stderr
    assert re.search(r"ray: 2 node\(s\), 2 annotator\(s\) of 1 thread\(s\)", r.stderr), r.stderr
    assert re.search(r"radbatch: 1 input file\(s\), 2 head\(s\), 2 worker\(s\) x 1 thread\(s\)", r.stderr), r.stderr
    options = read_provenance(out)["options"]
    assert (options["executor"], options["workers"], options["threads"]) == ("ray", 2, 1)


@needs_ray
def test_ray_run_killed_midway_resumes_to_the_same_output(cluster, archive, local_output, tmp_path):
    out = tmp_path / "killed.parquet"
    args = _cmd(archive, out, "--executor", "ray", "--ray-address", cluster.address, "-q")
    parts = Path(f"{out}.radbatch") / "parts"
    proc = subprocess.Popen(args, env={**ENV, "RADBATCH_PART_ROWS": "8"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not list(parts.glob("part-*.parquet")):
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before a part was written"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    assert not out.exists()
    r = _run(args, RADBATCH_PART_ROWS="8")
    assert r.returncode == 0, r.stderr
    computed = int(r.stdout.split("(")[1].split()[0])
    assert 0 < computed < ROWS        # the saved units were not recomputed
    _same_table(local_output, out)    # and nothing is missing or duplicated


@needs_ray
def test_ray_annotator_killed_midway_is_replaced(cluster, archive, local_output, tmp_path):
    out = tmp_path / "actor.parquet"
    before = set(cluster.actor_pids())  # a killed driver's annotators may still be on their way out
    proc = subprocess.Popen(_cmd(archive, out, "--executor", "ray", "--ray-address", cluster.address),
                            env={**ENV, "RADBATCH_PART_ROWS": "8"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not list((Path(f"{out}.radbatch") / "parts").glob("part-*.parquet")):  # annotators are busy
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before a part was written"
            time.sleep(0.05)
        mine = [p for p in cluster.actor_pids() if p not in before]
        assert len(mine) == 2
        _kill(mine[:1])
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    _same_table(local_output, out)  # Ray restarted the annotator and retried its unit


@needs_ray
def test_unit_whose_annotator_always_dies_fails_its_rows_and_the_run_goes_on(cluster, archive, local_output,
                                                                             tmp_path):
    """The annotator SIGKILLs itself on every try of unit 0:8. Ray restarts it and retries the unit; after the
    last try radbatch marks the unit's 8 rows failed with the reason, as the local executor does, and every
    other row is what the local executor wrote."""
    out = tmp_path / "poison.parquet"
    r = _run(_cmd(archive, out, "--executor", "ray", "--ray-address", cluster.address),
             RADBATCH_TEST_CRASH_UNIT="0:8")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ray: gave up on 1 unit(s) after 3 tries each: 0:8; their rows are marked failed" in r.stderr
    assert f"rows: ok {ROWS - 9}, failed 8" in r.stdout  # row 5 is empty_text
    df, ref = pl.read_parquet(out), pl.read_parquet(local_output)
    assert df["source_row"].to_list() == list(range(ROWS))
    bad = df.slice(8, 8)
    assert bad["status"].to_list() == ["failed"] * 8
    assert set(bad["m_staging__status"]) == set(bad["rads_assignment__status"]) == {"error"}
    assert set(bad["m_staging__error"]) == {GIVE_UP}
    assert bad["m_staging__stage"].null_count() == 8
    assert df.slice(0, 8).equals(ref.slice(0, 8)) and df.slice(16).equals(ref.slice(16))


@needs_ray
def test_model_missing_on_a_node_names_node_and_path(cluster, tmp_path):
    real = tmp_path / "copy.gguf"
    real.write_bytes(b"GGUF" + b"\0" * 60)
    other = "0" * 64
    script = f"""
import ray
from radbatch.errors import EngineError
from radbatch.executors.ray_executor import check_nodes, layout
ray.init(address={cluster.address!r}, log_to_driver=False)
slots = layout(ray.nodes(), 1, 1)
try:
    check_nodes(ray, slots, [("model 'ghost'", "/nowhere/ghost.gguf", 10, {other!r}),
                             ("adapter of model 'x'", {str(real)!r}, 999, {other!r}),
                             ("model 'y'", {str(real)!r}, 64, {other!r}),
                             ("input", "/nowhere/archive.parquet", 10, None)], 0)
except EngineError as exc:
    print("EXIT", exc.exit_code)
    print(exc)
print("NODES", " ".join(f"{{s.node_id}}@{{s.ip}}" for s in slots))
"""
    r = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "EXIT 3" in r.stdout
    nodes = [n.split("@") for n in r.stdout.split("NODES ")[1].split()]
    assert len(nodes) == 2
    for node_id, ip in nodes:
        assert (f"Ray node {ip} (node id {node_id}, host {socket.gethostname()}): model 'ghost' file not "
                "found: /nowhere/ghost.gguf") in r.stdout
        assert (f"(node id {node_id}, host {socket.gethostname()}): adapter of model 'x' file {real} has 64 bytes "
                "here, 999 on the driver (a partial or different copy)") in r.stdout
        assert (f"(node id {node_id}, host {socket.gethostname()}): model 'y' file {real} differs from the "
                "driver's (sha256 ") in r.stdout
        assert (f"(node id {node_id}, host {socket.gethostname()}): input file not found: "
                "/nowhere/archive.parquet") in r.stdout
    assert "the driver's paths (a shared file system, or a copy staged there before the run)" in r.stdout


# -- without a cluster --------------------------------------------------------------------------------------
@needs_ray
def test_ray_without_address_runs_a_private_local_ray(archive, local_output, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "pilot.parquet"
    env = {k: v for k, v in ENV.items() if not k.startswith("RAY_AUTH")}
    r = subprocess.run(_cmd(archive, out, "--executor", "ray", "--limit", "8"), capture_output=True, text=True,
                       env={**env, "HOME": str(home)}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert re.search(r"ray: 1 node\(s\), 1 annotator\(s\) of 1 thread\(s\), 0\.5 CPU reserved each; 1 unit\(s\) to "
                     r"annotate: 127\.0\.0\.1 1 x 1 thread\(s\)", r.stderr), r.stderr
    assert pl.read_parquet(out).equals(pl.read_parquet(local_output).head(8))  # unit 0:0 is the same unit
    ok = pl.read_parquet(out).filter(pl.col("m_staging__status") == "ok")   # confidence rides along (rows.assemble)
    assert ok.height and ok["m_staging__confidence"].dtype == pl.Float32 and ok["m_staging__confidence"].null_count() == 0
    assert not (home / ".ray").exists()  # the run's token lived in its environment only


def test_layout_reserves_fractional_cpus_per_node():
    nodes = [{"NodeID": "h", "NodeManagerAddress": "10.0.0.1", "Alive": True, "Resources": {"CPU": 0.0}},
             {"NodeID": "a", "NodeManagerAddress": "10.0.0.2", "Alive": True, "Resources": {"CPU": 2.0}},
             {"NodeID": "b", "NodeManagerAddress": "10.0.0.3", "Alive": True, "Resources": {"CPU": 16.0}},
             {"NodeID": "c", "NodeManagerAddress": "10.0.0.4", "Alive": False, "Resources": {"CPU": 8.0}}]
    default = layout(nodes, None, None)
    assert [(s.node_id, s.workers, s.threads, s.actor_cpus) for s in default] == [("a", 1, 2, 1.0), ("b", 8, 2, 1.0)]
    given = layout(nodes, 3, 4)
    assert [(s.node_id, s.workers, s.threads) for s in given] == [("a", 3, 4), ("b", 3, 4)]
    for s in default + given:   # the actors of a node never reserve more than CPU_SHARE of it
        assert 0 < s.actor_cpus * s.workers <= s.cpus * CPU_SHARE + 1e-6


@needs_ray
def test_unreachable_ray_address_fails_fast(archive, tmp_path):
    t0 = time.monotonic()
    r = _run(_cmd(archive, tmp_path / "x.parquet", "--executor", "ray", "--ray-address", f"127.0.0.1:{_free_port()}"))
    assert r.returncode == 3
    assert "Error: no Ray cluster answers at 127.0.0.1:" in r.stderr and "ray start --head" in r.stderr
    assert time.monotonic() - t0 < 30


def test_ray_address_needs_ray_executor(archive, tmp_path):
    r = CliRunner().invoke(cli, ["annotate", str(archive), "-o", str(tmp_path / "x.parquet"), "--ray-address", "auto"])
    assert r.exit_code == 2 and "--ray-address needs --executor ray" in r.output


def test_cli_and_pipeline_never_import_ray():
    code = "import sys, radbatch.cli.main, radbatch.annotation.pipeline; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], env=ENV).returncode == 0


def test_reservation_leaves_a_cpu_for_ray_data_tasks():
    small = [{"NodeID": n, "NodeManagerAddress": n, "Alive": True, "Resources": {"CPU": 1.0}} for n in "ab"]
    slots = layout(small, 1, 1)
    with pytest.raises(Exception, match="no Ray node has more than one CPU"):
        reservation(slots)  # 0.5 + 0.5 free: a read task (1 CPU) would wait forever
    mixed = small + [{"NodeID": "c", "NodeManagerAddress": "c", "Alive": True, "Resources": {"CPU": 2.0}}]
    slots = layout(mixed, 2, 1)   # 2 actors a node; on the 2-CPU node 2 x 0.5 leaves one CPU free
    assert reservation(slots) == 0.25
    slots = layout(mixed, 3, 1)   # 3 x 0.1667 on the 1-CPU nodes; the 2-CPU node needs <= 1/3 each
    share = reservation(slots)
    assert any(s.cpus - s.workers * share >= TASK_CPUS - 1e-9 for s in slots)


@needs_ray
@pytest.mark.parametrize("fmt", ["parquet", "parquet-row-groups", "csv"])
def test_datasource_reads_exactly_the_local_units(tmp_path, fmt):
    """The read tasks give the pending units (and only them) with the rows and types the local executor reads."""
    from radbatch.archive.reading import inspect, iter_units
    import numpy as np
    from radbatch.annotation.job import Pending
    from radbatch.executors.ray_data import UnitDatasource, from_ipc
    texts = [REPORTS[i % len(REPORTS)] for i in range(50)]
    path = write_reports(tmp_path / ("a.csv" if fmt == "csv" else "a.parquet"), texts=texts,
                         fmt="csv" if fmt == "csv" else "parquet")
    if fmt == "parquet-row-groups":
        pq.write_table(pq.read_table(path), path, row_group_size=7)
    f = inspect(0, path, "utf-8")
    units = Pending(8, {0: np.array([s for s in range(0, 50, 8) if s != 16])}, {0: 50})   # unit 0:16 is done
    tasks = UnitDatasource([f], units, "utf-8", {"report_text"}).get_read_tasks(3)
    assert len(tasks) == (3 if fmt == "parquet-row-groups" else 1)   # CSV and one row group: one pass each
    got = {}
    for task in tasks:
        for block in task():
            for row in block.to_pylist():
                assert row["source_file"] == str(path) and row["rows"] == from_ipc(row["data"]).num_rows
                got[row["start_row"]] = from_ipc(row["data"])
    local = dict(iter_units(f, "utf-8", {"report_text"}, 8))
    assert sorted(got) == [s for s in sorted(local) if s != 16]
    for start, table in got.items():
        assert table.schema == local[start].schema and table.equals(local[start])


@needs_ray
def test_the_job_cuts_units_once_and_both_executors_read_them_with_the_same_priors(tmp_path):
    """The job plans the units once (ids, rows, --limit across files, done units skipped); the local executor
    reads exactly those units, and Ray's read tasks give each the same prior reports as the local executor."""
    import pyarrow as pa
    from radbatch.archive.reading import ColumnOptions
    from radbatch.annotation.job import cut_units, plan_job
    from radbatch.annotation.output import RunStore
    from radbatch.executors.local import read_units
    from radbatch.annotation.plan import AnnotateOptions, build_plan
    from radbatch.executors.ray_data import UnitPriors

    paths = []
    for k, n in enumerate((19, 12)):
        table = pa.table({"report_id": [f"F{k}R{i}" for i in range(n)],
                          "report_text": [REPORTS[(i + k) % len(REPORTS)] for i in range(n)],
                          "patient_id": [f"P{i % 4}" for i in range(n)],
                          "study_date": [f"2024-0{1 + (i + k) % 9}-1{i % 10}" for i in range(n)]})
        paths.append(tmp_path / f"f{k}.parquet")
        pq.write_table(table, paths[-1])
    opts = AnnotateOptions(tuple(map(str, paths)), str(tmp_path / "out.parquet"), tasks="temporal_comparison",
                           columns=ColumnOptions(patient="patient_id", date="study_date"), limit=27)
    plan = build_plan(opts)
    store = RunStore(opts.output)
    store.begin(plan.run_key, plan.key_material, False)
    job = plan_job(plan, store)
    job.pending, job.total_rows, job.done_rows = cut_units(plan, {"0:8": None})   # as if unit 0:8 were written
    local = list(read_units(job))
    refs = list(job.pending)
    priors_path = job.priors_path
    assert [(w.file_index, w.start_row, w.table.num_rows) for w in local] == [(0, 0, 8), (0, 16, 3), (1, 0, 8)]
    assert [(u.file_index, u.start, u.rows) for u in refs] == [(0, 0, 8), (0, 16, 3), (1, 0, 8)]
    assert (job.total_rows, job.done_rows) == (27, 8)
    with_priors = 0
    for w, u in zip(local, refs):
        local_priors = {w.start_row + i: row.prior for i, row in enumerate(w.inputs) if row and row.prior}
        assert UnitPriors(priors_path, u.file_index, u.start, u.start + u.rows).take(u.start, u.rows) == local_priors
        with_priors += len(local_priors)
    assert with_priors > 0


def test_a_ray_run_with_nothing_pending_starts_no_ray_and_records_no_annotator(tmp_path):
    """Every unit already in parts (killed while finalizing): no Ray is started, no annotator ran (0 x 0)."""
    from radbatch.executors.ray_executor import RayExecutor
    from radbatch.annotation.job import Parallelism, cut_units, plan_job
    from radbatch.annotation.output import RunStore
    from radbatch.annotation.pipeline import RunSummary
    from radbatch.annotation.plan import AnnotateOptions, build_plan
    from radbatch.annotation.result_store import RunCache
    path = write_reports(tmp_path / "a.parquet", 12)
    opts = AnnotateOptions((str(path),), str(tmp_path / "out.parquet"), tasks="m_staging", model=MODEL,
                           executor="ray", ray_address=f"127.0.0.1:{_free_port()}")   # nothing listens there
    plan = build_plan(opts)
    store = RunStore(opts.output)
    store.begin(plan.run_key, plan.key_material, False)
    job = plan_job(plan, store)
    job.pending, job.total_rows, job.done_rows = cut_units(plan, {"0:0": None, "0:8": None})
    assert (len(job.pending), job.total_rows, job.done_rows) == (0, 12, 12)
    executor = RayExecutor(job, RunCache.open(plan, RunSummary()))   # no --cache: counts only
    assert executor.resolve() == Parallelism(0, 0)
    parts = executor.parts()
    assert list(parts) == [] and executor.ray is None
    parts.close()
    executor.close()


def _private_env(tmp_path: Path) -> dict:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {**{k: v for k, v in ENV.items() if not k.startswith("RAY_AUTH")}, "HOME": str(home)}


@needs_ray
def test_ray_engine_raising_on_every_unit_stops_with_exit_3(archive, tmp_path):
    """As the local pool (issue 13, item 4): units whose engine raises, 3 in a row, stop the run with exit 3."""
    r = subprocess.run(_cmd(archive, tmp_path / "o.parquet", "--executor", "ray"), capture_output=True, text=True,
                       env={**_private_env(tmp_path), "RADBATCH_TEST_CRASH_UNIT": "0:0,0:8,0:16,0:24;raise"},
                       timeout=300)
    assert r.returncode == 3, r.stderr[-3000:]
    assert re.search(r"Error: The engine raised RuntimeError on 3 units in a row \(last: unit 0:\d+\)", r.stderr)
    assert "Traceback" not in r.stderr


@needs_ray
def test_ray_read_tasks_give_the_temporal_head_the_local_priors(tmp_path):
    """The driver no longer ships priors with each unit: read tasks read them from priors.parquet (issue 13,
    item 12). With a relative -o, the Ray output equals the local executor's, priors included."""
    import pyarrow as pa
    n = 8
    pq.write_table(pa.table({"report_id": [f"R{i}" for i in range(n)],
                             "report_text": [REPORTS[i % len(REPORTS)] for i in range(n)],
                             "patient_id": [f"P{i // 2}" for i in range(n)],
                             "study_date": [f"2024-0{1 + i % 2}-15" for i in range(n)]}), tmp_path / "t.parquet")
    args = ["--tasks", "temporal_comparison", "--patient-column", "patient_id", "--date-column", "study_date",
            "--workers", "1", "--threads", "1", "-q"]
    env = _private_env(tmp_path)
    for out, extra in (("local.parquet", []), ("ray.parquet", ["--executor", "ray"])):
        r = subprocess.run([str(BIN / "radbatch"), "annotate", "t.parquet", "-o", out, *args, *extra], cwd=tmp_path,
                           capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
    local, ray_ = pl.read_parquet(tmp_path / "local.parquet"), pl.read_parquet(tmp_path / "ray.parquet")
    assert ray_.equals(local)
    assert (local["temporal_comparison__status"][1::2] != "not_applicable").all()   # each odd row has a prior
