"""Peak memory of `--retry-errors` on a big finished output, and of the Ray driver's plan of a big pending run.

Nobody can annotate a million reports on 2 cores, so the finished output is built here, cheaply and exactly as a
real m_staging run would have left it: the same columns and types (from the head's output fields), the real run
key in the Parquet metadata (from `build_plan` of the code under test), every row `ok` except the rows of a few
units marked `error`. `radbatch annotate --retry-errors` then really runs on it: it reopens the output, recomputes
only those units on the embedded model, and finalises the million rows. Its main process's peak RSS (VmHWM,
sampled every 20 ms) is the figure; the workers' peak is printed too.

    bench/exclusive .venv/bin/python bench/memory_retry.py --rows 1000000 --errors 5 --dir /tmp/memretry
    bench/exclusive .venv/bin/python bench/memory_retry.py --rows 1000000 --ray-plan --dir /tmp/memretry

`--ray-plan` measures the Ray driver's planning step alone (`job.cut_units` over a million pending rows
with the temporal head's priors; no Ray cluster is started): the peak RSS of that process before and after.
Set PYTHONPATH to the checkout to measure (e.g. /work/main for the code before a change).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TEMPLATES = ["CT chest, abdomen and pelvis with contrast. Indication: staging. Findings: {n} mm nodule in the {lobe} "
             "lobe. No pleural effusion. Liver: {k} hypodense lesions, the largest {n} mm. Impression: {imp}.",
             "XR chest PA and lateral. Comparison: {d}. The lungs are clear. Heart size normal. No effusion or "
             "pneumothorax. Impression: {imp}.",
             "MRI brain with and without contrast. Findings: {k} enhancing lesions, the largest {n} mm in the {lobe} "
             "lobe, with surrounding edema. Impression: {imp}."]
IMPRESSIONS = ["no acute disease", "findings compatible with metastases", "stable appearance", "osseous metastasis"]
LOBES = ["right upper", "left lower", "frontal", "parietal", "middle"]


def _date(i: int) -> str:
    return f"20{10 + i % 14}-0{1 + i % 9}-1{i % 9}"


def build_input(path: Path, rows: int) -> None:
    """report_id, report_text (120-260 characters), patient_id and study_date (for the temporal head's priors)."""
    chunk = 100_000
    schema = pa.schema([("report_id", pa.string()), ("report_text", pa.string()), ("patient_id", pa.string()),
                        ("study_date", pa.string())])
    with pq.ParquetWriter(path, schema, compression="zstd") as w:
        for lo in range(0, rows, chunk):
            r = range(lo, min(rows, lo + chunk))
            w.write_table(pa.table({
                "report_id": [f"R{i:07d}" for i in r],
                "report_text": [TEMPLATES[i % 3].format(n=3 + i % 37, k=1 + i % 6, lobe=LOBES[i % 5],
                                                        imp=IMPRESSIONS[i % 4], d=_date(i)) for i in r],
                "patient_id": [f"P{i // 4:07d}" for i in r],
                "study_date": [_date(i) for i in r]}, schema=schema),
                row_group_size=64_000)


def build_output(src: Path, out: Path, errors: int) -> dict:
    """A finished m_staging output of `src` with `errors` units in error, under the run key of the code under test."""
    from radbatch.annotation.plan import AnnotateOptions, build_plan
    plan = build_plan(AnnotateOptions((str(src),), str(out), tasks="m_staging"))
    (head,) = plan.heads
    rows, size = plan.files[0].rows, plan.opts.unit_size
    bad = {(u * (rows // size // errors)) * size for u in range(errors)}
    fields = list(head.output_fields())
    schema = pa.schema([("report_id", pa.string()), ("report_text", pa.string()), ("patient_id", pa.string()),
                        ("study_date", pa.string()), ("source_file", pa.string()), ("source_row", pa.int64()),
                        ("status", pa.string()), *[(f.name, f.type) for f in fields], ("id_duplicated", pa.bool_())])
    schema = schema.with_metadata({"radbatch": json.dumps({"run_key": plan.run_key})})
    model = plan.head_models[head.key].name
    pf = pq.ParquetFile(src)
    start = 0
    with pq.ParquetWriter(out, schema, compression="zstd") as w:
        for batch in pf.iter_batches(batch_size=50_000):
            n = batch.num_rows
            err = [((start + i) // size * size) in bad for i in range(n)]
            cols = {c: batch.column(c) for c in ("report_id", "report_text", "patient_id", "study_date")}
            cols |= {"source_file": pa.array([str(src)] * n),
                     "source_row": pa.array(range(start, start + n), pa.int64()),
                     "status": pa.array(["failed" if e else "ok" for e in err])}
            for f in fields:
                short = f.name.rsplit("__", 1)[1]
                if short == "status":
                    cols[f.name] = pa.array(["error" if e else "ok" for e in err], f.type)
                elif short == "error":
                    cols[f.name] = pa.array(["worker died (signal 9) on this unit 3 times" if e else None for e in err])
                elif short == "model":
                    cols[f.name] = pa.array([None if e else model for e in err], f.type)
                elif pa.types.is_string(f.type):
                    cols[f.name] = pa.array([None if e else "M0" for e in err], f.type)
                else:
                    cols[f.name] = pa.nulls(n, f.type)
            cols["id_duplicated"] = pa.array([False] * n)
            w.write_table(pa.table(cols, schema=schema.remove_metadata()), row_group_size=50_000)
            start += n
    return {"run_key": plan.run_key, "error_units": sorted(bad)}


def peak_of(cmd: list[str], env: dict) -> tuple[int, float, int]:
    """(exit code, wall seconds, main process peak RSS bytes sampled from VmHWM)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env)
    peak = [0]

    def sample():
        while proc.poll() is None:
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]) * 1024)
            except OSError:
                pass
            time.sleep(0.02)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    code = proc.wait()
    t.join()
    return code, time.monotonic() - t0, peak[0]


def ray_plan(src: Path, work: Path, prepare: bool) -> None:
    """The Ray driver's plan of a fully pending run with the temporal head: its RSS before and after (the plan
    still held) and the process's peak. The priors file is built first in another process (`prepare`), so
    polars' memory for it does not count."""
    from radbatch.annotation.job import cut_units
    from radbatch.annotation.plan import AnnotateOptions, build_plan
    from radbatch.archive.reading import ColumnOptions
    from radbatch.archive.priors import build_priors
    cols = ColumnOptions(patient="patient_id", date="study_date")
    plan = build_plan(AnnotateOptions((str(src),), str(work / "ray.parquet"), tasks="temporal_comparison",
                                      columns=cols, executor="ray"))
    work.mkdir(parents=True, exist_ok=True)
    build_priors(plan.files, cols, "utf-8", work, None)   # as the run would, before planning its units
    if prepare:
        return
    base = _status("VmRSS")
    t0 = time.monotonic()
    units, _, _ = cut_units(plan, {})
    n = len(units)   # a list of UnitRefs before, a compact Pending after
    print(json.dumps({"what": "ray plan", "units": n, "seconds": round(time.monotonic() - t0, 1),
                      "rss_before_plan_mib": round(base / 2**20), "rss_with_plan_mib": round(_status("VmRSS") / 2**20),
                      "peak_rss_mib": round(_status("VmHWM") / 2**20)}))


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--errors", type=int, default=5, help="units marked error in the finished output")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/radbatch-memory-retry"))
    ap.add_argument("--ray-plan", action="store_true", help="measure the Ray driver's plan instead")
    ap.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.dir.mkdir(parents=True, exist_ok=True)
    src = a.dir / f"in-{a.rows}.parquet"
    if not src.exists():
        build_input(src, a.rows)
    if a.ray_plan:
        if not a.prepare:
            subprocess.run([sys.executable, *sys.argv, "--prepare"], check=True)
        ray_plan(src, a.dir / "ray-work", a.prepare)
        return
    out = a.dir / "out.parquet"
    import shutil
    shutil.rmtree(str(out) + ".radbatch", ignore_errors=True)
    info = build_output(src, out, a.errors)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "radbatch", "annotate", str(src), "-o", str(out), "--tasks", "m_staging",
           "--retry-errors", "--workers", "1", "--threads", "2", "-q"]
    code, wall, peak = peak_of(cmd, env)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    import polars as pl
    done = pl.scan_parquet(out).select(pl.len(), (pl.col("m_staging__status") == "error").sum()).collect().row(0)
    print(json.dumps({"what": "retry-errors", "rows": a.rows, "error_units": len(info["error_units"]),
                      "exit": code, "seconds": round(wall, 1), "main_peak_rss_mib": round(peak / 2**20),
                      "largest_process_peak_rss_mib": round(children / 2**20), "rows_after": done[0],
                      "errors_after": done[1], "input_mib": round(src.stat().st_size / 2**20),
                      "output_mib": round(out.stat().st_size / 2**20)}))


if __name__ == "__main__":
    main()
