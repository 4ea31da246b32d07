"""Benchmark `radbatch sample`: wall time, CPU time and peak memory per configuration.

    .venv/bin/python bench/bench_sample.py                 # 1,000,000 rows --no-gold; 100,000 rows with gold
    .venv/bin/python bench/bench_sample.py --rows 200000   # one size, both configurations

Each configuration runs in a fresh process so peak RSS (resource.getrusage) is its own. Peak RSS is
reported for the writing process and for the largest worker. CPU seconds are summed over all
processes: on a busy machine wall time grows, CPU time much less, so both are printed. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_one(rows: int, gold: bool, fmt: str, workers: int | None) -> dict:
    """Runs in the child process: generate, write, measure."""
    sys.path.insert(0, str(REPO))
    from radbatch.sample.archive import SampleOptions, write_archive

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"bench.{fmt}"
        start, cpu0 = time.perf_counter(), time.process_time()
        write_archive(SampleOptions(rows=rows, output=out, seed=0, gold=gold, workers=workers))
        wall = time.perf_counter() - start
        size = out.stat().st_size
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "rows": rows,
        "gold": gold,
        "format": fmt,
        "workers": workers or os.cpu_count(),
        "wall_s": round(wall, 2),
        "rows_per_s": round(rows / wall),
        "cpu_s": round(me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime, 2),
        "cpu_us_per_row": round((me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime) / rows * 1e6, 1),
        "peak_rss_writer_mb": round(me.ru_maxrss / 1024),
        "peak_rss_worker_mb": round(kids.ru_maxrss / 1024),
        "output_mb": round(size / 2**20, 1),
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, help="one size for both configurations")
    parser.add_argument("--format", default="parquet", choices=["parquet", "csv"])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: JSON args of one child run
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(**json.loads(args.one))))
        return
    configs = [(args.rows or 1_000_000, False), (args.rows or 100_000, True)]
    print(f"{'rows':>9} {'gold':>5} {'wall s':>7} {'rows/s':>8} {'cpu s':>7} {'cpu us/row':>10} "
          f"{'rss writer':>10} {'rss worker':>10} {'out MB':>7} {'load':>5}")  # fmt: skip
    for rows, gold in configs:
        spec = json.dumps({"rows": rows, "gold": gold, "fmt": args.format, "workers": args.workers})
        child = subprocess.run([sys.executable, __file__, "--one", spec], capture_output=True, text=True, check=True)
        r = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{r['rows']:>9} {str(r['gold']):>5} {r['wall_s']:>7} {r['rows_per_s']:>8} {r['cpu_s']:>7} "
              f"{r['cpu_us_per_row']:>10} {r['peak_rss_writer_mb']:>7} MB {r['peak_rss_worker_mb']:>7} MB "
              f"{r['output_mb']:>7} {r['load_avg_1m']:>5}")  # fmt: skip


if __name__ == "__main__":
    main()
