"""Soak: one long `radbatch annotate` run on the embedded model; is memory flat, does throughput hold?

    .venv/bin/python bench/soak.py                         # 3,000 rows, m_staging, 2 workers x 1 thread
    .venv/bin/python bench/soak.py --rows 5000 --max-minutes 25 --workers 1 --threads 2

Samples the resident memory (VmRSS) of the main process and of each worker every few seconds, counts the rows
in the finished parts (their footers) for throughput, and prints one line per interval, then ratios: late RSS
over early RSS (after warm-up) per process, and late throughput over early throughput. Not a test: timings
depend on what else the machine runs. Results of the committed run are in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
EXAMS = ["CT CHEST, ABDOMEN AND PELVIS WITH CONTRAST", "CT ABDOMEN AND PELVIS", "MRI LIVER", "PET-CT WHOLE BODY",
         "XR CHEST PA AND LATERAL", "CT CHEST WITHOUT CONTRAST"]
INDICATIONS = ["Staging of colon cancer.", "Restaging of lung cancer.", "Follow-up of breast cancer.",
               "Abdominal pain.", "Weight loss.", "Surveillance after resection."]
FINDINGS = ["Multiple hypodense hepatic lesions, the largest {n} mm, compatible with metastases.",
            "No focal hepatic lesion.", "Enlarged right hilar lymph node measuring {n} mm.",
            "Lytic lesion in the L{k} vertebral body.", "No suspicious osseous lesion.",
            "Small right pleural effusion.", "Adrenal glands are unremarkable.", "Left adrenal nodule of {n} mm.",
            "Solid pulmonary nodule of {n} mm in the right upper lobe.", "No lymphadenopathy.",
            "Peritoneal nodularity suspicious for carcinomatosis.", "Kidneys are normal."]
IMPRESSIONS = ["Metastatic disease to the liver.", "No evidence of distant metastatic disease.",
               "Osseous metastasis.", "Indeterminate adrenal nodule; no definite metastasis.",
               "Stable disease.", "New pulmonary nodule, suspicious for metastasis."]


def make_input(path: Path, rows: int, seed: int) -> None:
    """Synthetic CT staging reports, 200-500 characters each (deterministic for a seed)."""
    rng = random.Random(seed)
    texts = []
    for _ in range(rows):
        found = " ".join(rng.choice(FINDINGS).format(n=rng.randint(4, 40), k=rng.randint(1, 5))
                         for _ in range(rng.randint(2, 5)))
        texts.append(f"EXAM: {rng.choice(EXAMS)}\nINDICATION: {rng.choice(INDICATIONS)}\n"
                     f"FINDINGS: {found}\nIMPRESSION: {rng.choice(IMPRESSIONS)}")
    pq.write_table(pa.table({"report_id": [f"S{i:06d}" for i in range(rows)], "report_text": texts}), path)


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    out = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


def workers_of(main: int) -> list[int]:
    """The pool's workers: spawned children running python (the resource tracker is one too; it is tiny
    and shows up as the smallest, so we report the largest `workers` ones)."""
    return children(main)


class PartCounter:
    """Rows in the finished parts (read from footers once per part)."""

    def __init__(self, parts: Path):
        self.parts, self.seen, self.rows = parts, {}, 0

    def count(self) -> int:
        if self.parts.is_dir():
            for p in self.parts.glob("part-*.parquet"):
                if p.name not in self.seen:
                    try:
                        self.seen[p.name] = pq.read_metadata(p).num_rows
                    except (OSError, pa.ArrowException):
                        continue
                    self.rows += self.seen[p.name]
        return self.rows


def ratio(late: list[float], early: list[float]) -> float:
    return statistics.median(late) / statistics.median(early) if late and early else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--tasks", default="m_staging")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--interval", type=float, default=120.0, help="seconds per throughput line")
    ap.add_argument("--sample", type=float, default=2.0, help="seconds between RSS samples")
    ap.add_argument("--max-minutes", type=float, default=23.0, help="Ctrl-C the run after this long")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/radbatch-soak"))
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    # Started with `nohup ... &`, SIGINT arrives ignored and the run would inherit that: restore it so the time cap
    # (a Ctrl-C) reaches radbatch.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    args.dir.mkdir(parents=True, exist_ok=True)
    src, out = args.dir / f"soak-{args.rows}-{args.seed}.parquet", args.dir / "out.parquet"
    if not src.exists():
        make_input(src, args.rows, args.seed)
    cmd = [sys.executable, "-m", "radbatch", "annotate", str(src), "-o", str(out), "--tasks", args.tasks,
           "--workers", str(args.workers), "--threads", str(args.threads), "--restart", "-q"]
    print("soak:", " ".join(cmd[2:]), flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parts = PartCounter(Path(str(out) + ".radbatch") / "parts")
    samples = []      # (t, rows done, main rss, [worker rss])
    next_line, last_rows, last_t, interrupted = args.interval, 0, 0.0, False
    print(f"{'min':>6} {'rows':>6} {'rows/s':>7} {'main MiB':>9} {'workers MiB':>20} {'load avg':>9}", flush=True)
    while proc.poll() is None:
        time.sleep(args.sample)
        t = time.monotonic() - t0
        workers = sorted((r for r in map(rss_mib, workers_of(proc.pid)) if r is not None), reverse=True)
        samples.append((t, parts.count(), rss_mib(proc.pid), workers[:args.workers]))
        if t >= next_line:
            rows = samples[-1][1]
            rate = (rows - last_rows) / (t - last_t)
            print(f"{t / 60:6.1f} {rows:6d} {rate:7.2f} {samples[-1][2] or 0:9.0f} "
                  f"{' '.join(f'{w:.0f}' for w in samples[-1][3]):>20} {os.getloadavg()[0]:9.1f}", flush=True)
            next_line, last_rows, last_t = next_line + args.interval, rows, t
        if t > args.max_minutes * 60 and not interrupted:
            proc.send_signal(signal.SIGINT)
            interrupted = True
    stdout, stderr = proc.communicate()
    wall = time.monotonic() - t0
    print(stdout.strip())
    if proc.returncode != 0:
        print(f"exit code {proc.returncode}: {stderr.strip()[-2000:]}")
    done = re.search(r"\((\d+) computed this run\)|Interrupted: (\d+) newly", stdout + stderr)
    annotated = int(done.group(1) or done.group(2)) if done else None
    return report(samples, wall, args, proc.returncode, interrupted, annotated)


def report(samples, wall: float, args, code: int, interrupted: bool, annotated: int | None) -> int:
    # Warm-up: skip the first 10% of the run (model load, first parts); compare the next 20% with the last 20%.
    running = [s for s in samples if s[3]]
    n = len(running)
    early, late = running[n // 10: n // 10 + max(1, n // 5)], running[-max(1, n // 5):]
    main_ratio = ratio([s[2] for s in late if s[2]], [s[2] for s in early if s[2]])
    worker_ratio = ratio([max(s[3]) for s in late], [max(s[3]) for s in early])
    main_growth = (statistics.median([s[2] for s in late]) - statistics.median([s[2] for s in early])) if n else 0
    worker_growth = (statistics.median([max(s[3]) for s in late]) - statistics.median([max(s[3]) for s in early])) \
        if n else 0
    thirds = [running[i * n // 3:(i + 1) * n // 3] for i in range(3)]
    rates = [(b[-1][1] - b[0][1]) / (b[-1][0] - b[0][0]) if len(b) > 1 and b[-1][0] > b[0][0] else float("nan")
             for b in thirds]
    rows = annotated if annotated is not None else samples[-1][1] if samples else 0
    how = "interrupted at the time cap" if interrupted else f"exit code {code}"
    print(f"\ninput rows {args.rows}, annotated {rows} ({how}), "
          f"wall {wall / 60:.1f} min, {args.workers} worker(s) x {args.threads} thread(s), tasks {args.tasks}")
    print(f"RSS main:   early {statistics.median([s[2] for s in early]) if early else 0:.0f} MiB, late "
          f"{statistics.median([s[2] for s in late]) if late else 0:.0f} MiB, ratio {main_ratio:.3f} "
          f"({main_growth:+.1f} MiB)")
    print(f"RSS worker: early {statistics.median([max(s[3]) for s in early]) if early else 0:.0f} MiB, late "
          f"{statistics.median([max(s[3]) for s in late]) if late else 0:.0f} MiB, ratio {worker_ratio:.3f} "
          f"({worker_growth:+.1f} MiB); max over the run {max((max(s[3]) for s in running), default=0):.0f} MiB")
    print(f"throughput by thirds (rows/s): {', '.join(f'{r:.2f}' for r in rates)}; "
          f"last/first {rates[2] / rates[0]:.2f}" if rates[0] else "throughput: not enough samples")
    flat = main_growth < 20 and worker_growth < 20
    steady = rates[0] > 0 and rates[2] / rates[0] > 0.8
    print(f"memory flat (growth < 20 MiB per process): {'yes' if flat else 'NO'}; "
          f"throughput holds (last third >= 0.8 x first): {'yes' if steady else 'NO'}; rows seen in parts {rows}")
    return 0 if code in (0, 130) else code


if __name__ == "__main__":
    sys.exit(main())
