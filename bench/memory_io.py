"""Memory and IO: a worker's peak RSS against model + KV size; streaming a big archive with no heads.

    .venv/bin/python bench/memory_io.py [--reports 16] [--threads 2] [--rows 1000000] [--per-report S]
                                        [--skip memory,io]

memory  `radbatch annotate --engine batched|simple` on sample reports, 1 worker; the worker process's peak
        RSS (VmHWM, read from /proc while it runs) next to the model file and the engine's KV cache size.
io      `radbatch annotate --tasks none` on a ROWS-row archive (made once with `radbatch sample --no-gold`,
        cached in ~/.cache/radbatch/bench/): wall time per row and the process's RSS sampled every 0.5 s,
        by tenth of the streaming time (flat memory; finalize, the sort of all parts into one output file,
        shown apart), and the per-row IO cost as a share of the model time per report: --per-report (e.g. the
        batched engine's steady-state seconds per report from bench/throughput.py), else the memory run's
        batched annotate (start-up included, so a larger denominator).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload  # noqa: E402

CACHE = Path(os.environ.get("RADBATCH_CACHE", Path.home() / ".cache" / "radbatch")) / "bench"


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, val = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(val.split()[0]) * 1024
    except OSError:
        pass
    return out


def _descendants(pid: int) -> list[int]:
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                kids += [int(d.name)] + _descendants(int(d.name))
    return kids


class Watch:
    """Samples a process tree every `every` seconds: RSS of the root over time, peak RSS per process."""

    def __init__(self, proc: subprocess.Popen, every: float = 0.5, marker: Path | None = None):
        self.proc, self.every, self.marker = proc, every, marker
        self.root_rss: list[tuple[float, int]] = []
        self.peak: dict[int, int] = {}
        self.marked: float | None = None   # when `marker` (a file the run creates) first existed
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        while self.proc.poll() is None:
            st = _status(self.proc.pid)
            if self.marker is not None and self.marked is None and self.marker.exists():
                self.marked = time.monotonic() - t0
            if "VmRSS" in st:
                self.root_rss.append((time.monotonic() - t0, st["VmRSS"]))
            for pid in [self.proc.pid] + _descendants(self.proc.pid):
                hwm = _status(pid).get("VmHWM")
                if hwm:
                    self.peak[pid] = max(self.peak.get(pid, 0), hwm)
            time.sleep(self.every)


def _annotate(args: list[str], marker: Path | None = None) -> tuple[float, Watch, subprocess.CompletedProcess]:
    cmd = [sys.executable, "-m", "radbatch", "annotate", *args, "-q"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=workload.REPO)
    watch = Watch(proc, marker=marker)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    watch.thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"annotate failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, watch, subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def memory(n_reports: int, threads: int) -> float:
    """Prints peak RSS per worker for both engines; returns the batched run's seconds per report."""
    from radbatch.heads.models import embedded_path
    import llama_cpp as L

    path, source = workload.archive(n_reports)
    model = embedded_path()
    import logging
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)   # quiet model loading
    m = L.llama_model_load_from_file(str(model).encode(), L.llama_model_default_params())
    n_layer, n_head, n_head_kv, n_embd = (L.llama_model_n_layer(m), L.llama_model_n_head(m),
                                          L.llama_model_n_head_kv(m), L.llama_model_n_embd(m))
    L.llama_model_free(m)
    cell = n_layer * 2 * n_head_kv * (n_embd // n_head) * 2   # K and V, f16
    plan, _ = workload.units(path)
    (spec,) = plan.models.values()
    settings = plan.settings.batch   # RADBATCH_BATCHED, read once by build_plan
    n_ctx = spec.context_size
    cells = (settings.n_parallel + settings.n_prefix) * n_ctx   # one stream of n_ctx cells per sequence
    size = model.stat().st_size
    print(f"memory: {n_reports} reports from {source}; model {model.name} {size / 2**20:.0f} MiB; "
          f"KV {cell} bytes per cell; context {n_ctx}; batched {settings}")
    per_report = 0.0
    for engine, kv in (("simple", n_ctx * cell), ("batched", cells * cell)):
        out = Path(tempfile.mkdtemp(prefix="radbatch-mem-")) / "out.parquet"
        wall, watch, _ = _annotate([str(path), "-o", str(out), "--engine", engine, "--workers", "1",
                                    "--threads", str(threads), "--model", workload.MODEL,
                                    *workload.column_flags(path)])
        peaks = sorted(watch.peak.values())
        worker = peaks[-1] if peaks else 0
        print(f"  {engine:<8} worker peak RSS {worker / 2**20:7.0f} MiB = model {size / 2**20:.0f} MiB + KV "
              f"{kv / 2**20:.0f} MiB + {(worker - size - kv) / 2**20:.0f} MiB other (compute buffers, Python, "
              f"pyarrow); {wall:.0f} s for {n_reports} reports")
        if engine == "batched":
            per_report = wall / n_reports
    print(f"  (batched: {per_report:.2f} s per report end to end, start-up and model load included)")
    return per_report


def big_archive(rows: int) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"big-{rows}.parquet"
    if not path.exists():
        t0 = time.perf_counter()
        tmp = path.with_suffix(".tmp.parquet")
        subprocess.run([sys.executable, "-m", "radbatch", "sample", "-n", str(rows), "--no-gold", "-o", str(tmp)],
                       check=True, cwd=workload.REPO)
        tmp.rename(path)
        print(f"  made {path} with `radbatch sample -n {rows} --no-gold` in {time.perf_counter() - t0:.0f} s")
    return path


def io(rows: int, per_report: float) -> None:
    path = big_archive(rows)
    out = Path(tempfile.mkdtemp(prefix="radbatch-io-")) / "out.parquet"
    # finalize (the sort of all parts into the output) starts when its temporary file appears
    wall, watch, _ = _annotate([str(path), "-o", str(out), "--tasks", "none"],
                               marker=out.with_name(f".{out.name}.tmp"))
    per_row = wall / rows
    print(f"io: --tasks none on {rows:,} rows ({path.stat().st_size / 2**20:.0f} MiB in, "
          f"{out.stat().st_size / 2**20:.0f} MiB out): {wall:.0f} s, {per_row * 1e6:.0f} us per row")
    end = watch.marked or wall
    stream = [r for t, r in watch.root_rss if t < end]
    tail = [r for t, r in watch.root_rss if t >= end]
    deciles = [max((r for t, r in watch.root_rss if k * end / 10 <= t < (k + 1) * end / 10), default=0)
               for k in range(10)]
    print(f"  streaming ({end:.0f} s): RSS by tenth of the time, MiB: "
          + " ".join(f"{d / 2**20:.0f}" for d in deciles))
    if stream:
        print(f"  streaming RSS: first tenth {deciles[0] / 2**20:.0f} MiB, last tenth {deciles[-1] / 2**20:.0f} MiB, "
              f"max {max(stream) / 2**20:.0f} MiB")
    if tail:
        print(f"  finalize ({wall - end:.0f} s, sorting all parts into the output): peak RSS {max(tail) / 2**20:.0f} MiB")
    if per_report:
        print(f"  IO per row / model time per report ({per_report:.2f} s): {100 * per_row / per_report:.3f}%")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reports", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--per-report", type=float, default=0.0,
                    help="model seconds per report for the IO share (default: the memory run's batched annotate)")
    ap.add_argument("--skip", default="")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    print(f"{os.cpu_count()} cores; load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    per_report = 0.0
    if "memory" not in skip:
        per_report = memory(args.reports, args.threads)
    if args.per_report:   # e.g. the batched engine's steady-state seconds per report from bench/throughput.py
        per_report = args.per_report
    if "io" not in skip:
        io(args.rows, per_report)
    print("load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
