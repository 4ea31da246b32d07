"""Pick the batched engine's settings for this machine: try a few, print the fastest.

    .venv/bin/python bench/tune.py [--reports 8] [--threads 2] [--quick]

Runs the batched engine (in process, model loaded once per trial) on the sample reports' work units, for
every head, changing one setting at a time from the defaults: sequences in flight (n_parallel), then prompt
tokens per decode call (n_batch). Prints wall and CPU seconds per trial, the mean decode batch, how many
outputs differ from the defaults' (they should not: the settings change the schedule, not the arithmetic),
and the best setting as the line to export:

    export RADBATCH_BATCHED="n_parallel=32,n_batch=256"

radbatch reads RADBATCH_BATCHED once when it plans a run and ships it to every worker (unknown names are errors).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload  # noqa: E402


def trial(units, spec, threads, grammars, settings):
    from radbatch.engines.batched import BatchedEngine
    eng = BatchedEngine(spec, threads, 0, grammars, settings)
    t0, c0 = time.perf_counter(), time.process_time()
    outs = [eng.complete_many(u.requests) for u in units]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stats = dict(eng.stats)
    eng.close()
    return wall, cpu, outs, stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reports", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer trials (n_parallel only)")
    args = ap.parse_args(argv)

    from radbatch.engines.spec import BATCHED_ENV as ENV_VAR, BatchSettings
    path, source = workload.archive(args.reports)
    plan, units = workload.units(path)
    (name, spec), = plan.models.items()
    grammars = {h.recipe.id: h.grammar() for h in plan.heads}
    n_req = sum(len(u.requests) for u in units)
    print(f"{args.reports} reports from {source}: {n_req} head outputs; {args.threads} threads")
    print(f"{'setting':<52} {'wall s':>7} {'cpu s':>7} {'batch':>5} {'differ':>6}")

    base = BatchSettings()
    ref, results = None, []

    def run(settings):
        nonlocal ref
        wall, cpu, outs, st = trial(units, spec, args.threads, grammars, settings)
        flat = [c for o in outs for c in o]
        ref = ref or flat
        differ = sum(a != b for a, b in zip(ref, flat))
        batch = st["gen_tokens"] / max(st["steps"], 1)
        print(f"{str(settings).removeprefix('BatchSettings'):<52} {wall:7.1f} {cpu:7.1f} {batch:5.1f} {differ:6d}",
              flush=True)
        results.append((wall, settings))
        return wall

    best = base
    best_wall = run(base)
    for n_parallel in (8, 32):
        s = dataclasses.replace(best, n_parallel=n_parallel)
        if (w := run(s)) < best_wall:
            best, best_wall = s, w
    if not args.quick:
        for n_batch in (128, 256):
            s = dataclasses.replace(best, n_batch=n_batch)
            if (w := run(s)) < best_wall:
                best, best_wall = s, w
    changed = {f.name: getattr(best, f.name) for f in dataclasses.fields(best)
               if getattr(best, f.name) != getattr(base, f.name)}
    print(f"\nbest: {best} ({best_wall:.1f} s; defaults {results[0][0]:.1f} s)")
    if changed:
        value = ",".join(f"{k}={v}" for k, v in changed.items())
        print(f'export {ENV_VAR}="{value}"')
    else:
        print("the defaults are best here; nothing to export")
    return 0


if __name__ == "__main__":
    sys.exit(main())
