"""Benchmark `radbatch sample`: wall time, rows/s, CPU time and peak memory per configuration.

    .venv/bin/python bench/bench_sample.py                     # the three configurations below
    .venv/bin/python bench/bench_sample.py --config 200000:nogold:parquet
    .venv/bin/python bench/bench_sample.py --repo /tmp/old-checkout --config 1000000:nogold:parquet
    .venv/bin/python bench/bench_sample.py --generator compiled      # only the mypyc-compiled generator

By default each configuration runs twice, side by side: the pure-Python generator (RADBATCH_PURE_PYTHON=1)
and the mypyc-compiled one that `make setup` builds (radbatch/sample/native.py), and the pure/compiled
ratios of wall and CPU time are printed at the end. A row says which generator actually ran.

Default configurations: 1,000,000 rows --no-gold to Parquet and to CSV, and 200,000 rows with gold to
Parquet; seed 1, workers = the machine's cores (what `radbatch sample` does for large archives).
`--repo` imports radbatch from another checkout (say, an older commit) to compare on the same machine.

Each configuration runs in a fresh process so peak RSS (getrusage) is its own: the writing process and
the largest worker. CPU seconds are summed over all processes; on a busy machine wall time grows and CPU
time much less, so both are printed, with the 1-minute load average before and after. Not a test.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT = ("1000000:nogold:parquet", "1000000:nogold:csv", "200000:gold:parquet")


def run_one(repo: str, rows: int, gold: bool, fmt: str, workers: int | None, seed: int) -> dict:
    """Runs in the child process: generate, write, measure."""
    sys.path.insert(0, repo)
    load_before = os.getloadavg()[0]
    import radbatch.sample.reports
    from radbatch.sample.archive import SampleOptions, write_archive

    generator = "compiled" if Path(radbatch.sample.reports.__file__).suffix == ".so" else "pure"

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"bench.{fmt}"
        start = time.perf_counter()
        write_archive(SampleOptions(rows=rows, output=out, seed=seed, gold=gold, workers=workers))
        wall = time.perf_counter() - start
        size = out.stat().st_size
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    return {
        "generator": generator,
        "rows": rows,
        "gold": gold,
        "format": fmt,
        "workers": workers or os.cpu_count(),
        "wall_s": round(wall, 2),
        "rows_per_s": round(rows / wall),
        "cpu_s": round(cpu, 2),
        "cpu_us_per_row": round(cpu / rows * 1e6, 1),
        "peak_rss_writer_mb": round(me.ru_maxrss / 1024),
        "peak_rss_worker_mb": round(kids.ru_maxrss / 1024),
        "output_mb": round(size / 2**20, 1),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def parse_config(text: str) -> tuple[int, bool, str]:
    rows, gold, fmt = text.split(":")
    if gold not in ("gold", "nogold") or fmt not in ("parquet", "csv"):
        raise argparse.ArgumentTypeError(f"config is ROWS:gold|nogold:parquet|csv, got {text!r}")
    return int(rows), gold == "gold", fmt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", type=parse_config, help="ROWS:gold|nogold:parquet|csv (repeatable)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repo", default=str(REPO), help="checkout to import radbatch from")
    parser.add_argument("--generator", choices=("both", "pure", "compiled"), default="both")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: JSON args of one child run
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(**json.loads(args.one))))
        return
    configs = args.config or [parse_config(c) for c in DEFAULT]
    print(f"repo {args.repo}, seed {args.seed}, workers {args.workers or os.cpu_count()}, {os.cpu_count()} cores")
    generators = ("pure", "compiled") if args.generator == "both" else (args.generator,)
    results = []
    print(f"{'generator':>9} {'rows':>9} {'gold':>5} {'format':>7} {'wall s':>7} {'rows/s':>8} {'cpu s':>7} {'cpu us/row':>10} "
          f"{'rss writer':>10} {'rss worker':>10} {'out MB':>7} {'load':>11}")  # fmt: skip
    for (rows, gold, fmt), generator in itertools.product(configs, generators):
        spec = json.dumps({"repo": args.repo, "rows": rows, "gold": gold, "fmt": fmt, "workers": args.workers, "seed": args.seed})
        env = {k: v for k, v in os.environ.items() if k != "RADBATCH_PURE_PYTHON"}
        env.update({"RADBATCH_PURE_PYTHON": "1"} if generator == "pure" else {})
        child = subprocess.run([sys.executable, __file__, "--one", spec], capture_output=True, text=True, check=True, env=env)
        r = json.loads(child.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"{r['generator']:>9} {r['rows']:>9} {str(r['gold']):>5} {r['format']:>7} {r['wall_s']:>7} {r['rows_per_s']:>8} {r['cpu_s']:>7} "
              f"{r['cpu_us_per_row']:>10} {r['peak_rss_writer_mb']:>7} MB {r['peak_rss_worker_mb']:>7} MB "
              f"{r['output_mb']:>7} {r['load_before']:>5}/{r['load_after']:<5}", flush=True)  # fmt: skip
    for pure, compiled in zip(results[::2], results[1::2]) if len(generators) == 2 else ():
        if (pure["generator"], compiled["generator"]) != ("pure", "compiled"):
            print("compiled generator not in use (run `make setup`); no ratio")
            break
        print(f"pure/compiled {pure['rows']} rows gold={pure['gold']} {pure['format']}: wall "
              f"{pure['wall_s'] / compiled['wall_s']:.2f}x, CPU {pure['cpu_s'] / compiled['cpu_s']:.2f}x")


if __name__ == "__main__":
    main()
