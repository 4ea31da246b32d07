"""What per-label confidence costs: the same units through one loaded engine, confidence off and on, alternated.

    bench/exclusive .venv/bin/python bench/confidence.py [--reports 16] [--threads 2] [--rounds 2] [--engine batched]

The requests are `radbatch annotate --model smollm2`'s for all nine heads (bench/workload.py); "off" clears
Request.confidence on every request, "on" keeps it as annotate sets it (the five closed-label heads). The
rounds alternate off/on on one engine (model loaded once, in process), so drift in machine load hits both;
outputs must be identical both ways (confidence only reads the logits). Prints wall time per round, the
median of each side, the throughput change, and the engine's own confidence_s (time inside the
step-probability code).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload  # noqa: E402


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(engine, units, confidence: bool) -> tuple[float, float, list, float]:
    reqs = [[dataclasses.replace(r, confidence=r.confidence and confidence) for r in u.requests] for u in units]
    before = engine.stats["confidence_s"] if hasattr(engine, "stats") else 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    outs = []
    for rs in reqs:
        outs += engine.complete_many(rs) if hasattr(engine, "complete_many") else [engine.complete(r) for r in rs]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    after = engine.stats["confidence_s"] if hasattr(engine, "stats") else 0.0
    return wall, cpu, outs, after - before


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reports", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="off/on pairs")
    ap.add_argument("--engine", choices=("batched", "simple"), default="batched")
    args = ap.parse_args(argv)

    from radbatch.engines.simple import LlamaEngine
    from radbatch.engines.batched import BatchedEngine
    path, source = workload.archive(args.reports)
    plan, units = workload.units(path)
    (name, spec), = plan.models.items()
    grammars = {h.recipe.id: h.grammar() for h in plan.heads}
    n_req = sum(len(u.requests) for u in units)
    n_conf = sum(r.confidence for u in units for r in u.requests)
    print(f"{args.reports} reports from {source}; {n_req} head outputs ({n_conf} with confidence); "
          f"{args.engine} engine; {args.threads} threads; {os.cpu_count()} cores; {_load()}", flush=True)
    engine = (BatchedEngine(spec, args.threads, 0, grammars) if args.engine == "batched"
              else LlamaEngine(spec, args.threads, 0, grammars))
    run(engine, units[:1], True)   # warm-up: page the model in, build the end-token mask
    walls, cpus, code = {False: [], True: []}, {False: [], True: []}, []
    first = {}
    for i in range(args.rounds):
        for conf in ((False, True) if i % 2 == 0 else (True, False)):   # alternate the order: drift cancels
            wall, cpu, outs, conf_s = run(engine, units, conf)
            walls[conf].append(wall)
            cpus[conf].append(cpu)
            if conf:
                code.append(conf_s)
            first.setdefault(conf, outs)
            print(f"  round {i + 1} confidence {'on ' if conf else 'off'} {wall:7.1f} s wall {cpu:7.1f} s CPU  "
                  f"{args.reports / wall * 3600:7.0f} reports/h  confidence code {conf_s:5.2f} s", flush=True)
    same = first[False] == first[True]
    for what, f in (("median", statistics.median), ("min", min)):
        off, on, c_off, c_on = f(walls[False]), f(walls[True]), f(cpus[False]), f(cpus[True])
        print(f"{what}: wall off {off:.1f} s, on {on:.1f} s: throughput {100 * (off / on - 1):+.1f}% with confidence; "
              f"CPU off {c_off:.1f} s, on {c_on:.1f} s ({100 * (c_on / c_off - 1):+.1f}%)")
    print(f"confidence code {statistics.median(code):.2f} s per pass (median) = "
          f"{100 * statistics.median(code) / statistics.median(walls[True]):.2f}% of a pass; "
          f"outputs identical off/on: {same}; {_load()}")
    if hasattr(engine, "close"):
        engine.close()
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
