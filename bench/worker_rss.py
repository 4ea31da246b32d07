"""KV sized to the work (issue 16, item 4): a worker's peak RSS and the wall time with the shipped default
(recipes/models.toml + routing.toml: both adapter members and the rules member in one worker), side by side
with an earlier radbatch whose batched engine gave every KV stream the model's whole context.

    git worktree add /tmp/rb-before 244d421     # the last commit before streams grew to the work
    bench/exclusive env PYTHONPATH=$PWD .venv/bin/python bench/worker_rss.py --before /tmp/rb-before \
        [--reports 16] [--threads 2]
    # or this tree with its default engine settings against RADBATCH_BATCHED=SETTINGS, alternating, N times each
    bench/exclusive env PYTHONPATH=$PWD .venv/bin/python bench/worker_rss.py --settings n_parallel=8 --repeats 3

Each run is `radbatch annotate` on the first --reports sample reports, 1 worker, every head, the sample's column
options, with the code of that tree (PYTHONPATH); the worker's peak RSS is its VmHWM, sampled every 0.5 s
(bench/memory_io.Watch). Per model it also prints the KV the engine holds: n_parallel + n_prefix streams of
(the longest request that model serves, prompt + max_tokens, rounded up to 256 cells) x the GGUF's bytes per
cell, against the same streams at the model's context size.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload  # noqa: E402
from memory_io import Watch  # noqa: E402

REPO = workload.REPO


def run(tree: Path, archive: Path, threads: int, batched: str | None = None) -> tuple[float, int, str]:
    out = Path(tempfile.mkdtemp(prefix="radbatch-rss-")) / "out.parquet"
    cmd = [sys.executable, "-m", "radbatch", "annotate", str(archive), "-o", str(out), "--workers", "1",
           "--threads", str(threads), "-q", *workload.column_flags(archive)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("RADBATCH_BATCHED", None)
    if batched:
        env["RADBATCH_BATCHED"] = batched
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tree, env=env)
    watch = Watch(proc)
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    watch.thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"annotate failed in {tree} ({proc.returncode}):\n{err[-2000:]}")
    peaks = sorted(watch.peak.values())
    return wall, peaks[-1] if peaks else 0, str(out)


def kv_per_model(archive: Path) -> list[tuple[str, int, int, int, int]]:
    """(model, streams, longest request, grown stream cells, context) for the default routing's LLM members."""
    from radbatch.engines.batched import BatchedEngine
    from radbatch.engines.spec import STREAM_STEP, BatchSettings
    plan, units = workload.units(archive, model=None)
    settings = plan.settings.batch or BatchSettings()
    longest: dict[str, int] = defaultdict(int)
    for name, spec in plan.models.items():
        if spec.is_rules:
            continue
        engine = BatchedEngine(spec, 1, 0, {}, settings)   # for its tokenizer only
        for u in units:
            for r in u.requests:
                if r.model == name:
                    longest[name] = max(longest[name], len(engine.tokens(r.prompt)) + r.max_tokens)
        engine.close()
    streams = settings.n_parallel + settings.n_prefix
    return [(name, streams, need, -(-need // STREAM_STEP) * STREAM_STEP, plan.models[name].context_size)
            for name, need in sorted(longest.items())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--before", type=Path, help="a checkout of the earlier radbatch")
    which.add_argument("--settings", help="RADBATCH_BATCHED value to run against this tree's defaults")
    ap.add_argument("--repeats", type=int, default=3, help="with --settings: runs of each, alternating")
    ap.add_argument("--reports", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    from radbatch.heads.gguf_meta import kv_cell_bytes
    from radbatch.heads.models import embedded_path
    archive, source = workload.archive(a.reports)
    cell = kv_cell_bytes(embedded_path())
    print(f"{a.reports} reports from {source}, the shipped default routing, 1 worker x {a.threads} threads; "
          f"{cell} KV bytes per cell (SmolLM2-135M)")
    for name, streams, need, grown, ctx in kv_per_model(archive):
        print(f"  {name}: {streams} streams; longest request {need} cells -> streams of {grown}: KV "
              f"{streams * grown * cell / 2**20:.0f} MiB (at the context, {ctx}: {streams * ctx * cell / 2**20:.0f} MiB)")
    if a.settings:
        compare_settings(archive, a.settings, a.repeats, a.threads)
        return
    results = {}
    for label, tree in (("before", a.before.resolve()), ("after", REPO)):
        wall, peak, out = run(tree, archive, a.threads)
        results[label] = (wall, peak, out)
        print(f"  {label:<6} worker peak RSS {peak / 2**20:6.0f} MiB, {wall:5.1f} s ({tree})")
    import polars as pl
    same = pl.read_parquet(results["before"][2]).equals(pl.read_parquet(results["after"][2]))
    (wb, pb, _), (wa, pa, _) = results["before"], results["after"]
    print(f"after/before: peak RSS {pa / pb:.2f}x, wall {wa / wb:.2f}x; outputs identical: {same}")


def compare_settings(archive: Path, settings: str, repeats: int, threads: int) -> None:
    """Defaults and `settings` alternate (A B A B ...), so drift on a shared machine falls on both; medians."""
    import statistics

    import polars as pl
    runs: dict[str, list[tuple[float, int, str]]] = {"defaults": [], settings: []}
    for i in range(repeats):
        for label in runs:
            wall, peak, out = run(REPO, archive, threads, None if label == "defaults" else settings)
            runs[label].append((wall, peak, out))
            print(f"  run {i + 1} {label:<16} worker peak RSS {peak / 2**20:6.0f} MiB, {wall:5.1f} s")
    med = {k: (statistics.median(w for w, _, _ in v), max(p for _, p, _ in v)) for k, v in runs.items()}
    for label, (wall, peak) in med.items():
        print(f"{label:<16} median wall {wall:5.1f} s, peak RSS {peak / 2**20:.0f} MiB")
    (wd, pd), (ws, ps) = med["defaults"], med[settings]
    same = pl.read_parquet(runs["defaults"][0][2]).equals(pl.read_parquet(runs[settings][0][2]))
    print(f"{settings} / defaults: wall {ws / wd:.2f}x (median of {repeats}), peak RSS {ps / pd:.2f}x; "
          f"outputs identical: {same}")


if __name__ == "__main__":
    main()
