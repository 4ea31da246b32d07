"""Cost of the per-row result store (radbatch/annotation/result_store.py) apart from model time: writes and lookups of
--rows synthetic entries, keying requests, peak memory.

Entries look like real ones: a short answer with its per-token confidence steps (8 tokens) for 8 heads in 9, a
~300-character impression for the ninth. Writes go in one transaction per work unit (8 rows x 9 heads = 72
entries, as `RunCache` writes them); lookups ask for one unit's 72 keys at a time (as `RunCache.to_decode`), first
all hits (a rerun), then all misses (a grown archive's new rows). Keying hashes real rendered prompts of a
~1,500-character report. Prints rows/s for each and the process's peak RSS (ru_maxrss).

    bench/exclusive .venv/bin/python bench/result_store.py --rows 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import tempfile
import time
from pathlib import Path

from radbatch.engines.spec import Completion, Request
from radbatch.heads.prompts import Prompt
from radbatch.annotation.result_store import ResultStore, request_key

UNIT = 72   # 8 rows x 9 heads


def completion(i: int) -> Completion:
    if i % 9 == 8:
        text = f"Impression {i}: " + "Nodal and hepatic metastatic disease, increased since the prior study. " * 4
        return Completion(text, "stop", "", 600, 70)
    steps = tuple((k, k + 1, 0.9 - k / 100) for k in range(8))
    return Completion(f'{{"stage": "M{i % 2}"}}', "stop", "", 500, 8, steps)


def key(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(8, "little")).digest()


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f} rows/s ({seconds:.1f} s)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="entries (one head's result for one row each)")
    ap.add_argument("--dir", type=Path, default=None, help="where the store goes (default: a new temp folder)")
    a = ap.parse_args()
    folder = a.dir or Path(tempfile.mkdtemp(prefix="radbatch-store-bench-")) / "cache"
    store = ResultStore(folder)
    archive = "0" * 64

    t0 = time.perf_counter()
    for start in range(0, a.rows, UNIT):
        store.put_many([(key(i), completion(i)) for i in range(start, min(start + UNIT, a.rows))], [], archive)
    write_s = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in folder.glob("results.sqlite*"))

    t0, hits = time.perf_counter(), 0
    for start in range(0, a.rows, UNIT):
        hits += len(store.get_many([key(i) for i in range(start, min(start + UNIT, a.rows))]))
    hit_s = time.perf_counter() - t0
    assert hits == a.rows, hits

    t0, found = time.perf_counter(), 0
    for start in range(a.rows, 2 * a.rows, UNIT):
        found += len(store.get_many([key(i) for i in range(start, min(start + UNIT, 2 * a.rows))]))
    miss_s = time.perf_counter() - t0
    assert found == 0

    t0 = time.perf_counter()
    for start in range(0, a.rows, UNIT):   # reuse: mark a unit's hits as used (what a rerun writes)
        store.put_many([], [key(i) for i in range(start, min(start + UNIT, a.rows))], archive)
    touch_s = time.perf_counter() - t0
    store.close()

    report = "FINDINGS: " + "Enlarged right hilar lymph node measuring 1.8 cm. " * 30
    prompt = Prompt((("<|im_start|>system\nYou annotate radiology reports.<|im_end|>\n", True), (report, False),
                     ("\n\nAnswer with the M stage.<|im_end|>\n<|im_start|>assistant\n", True)))
    slot = hashlib.sha256(b"slot facts").digest()
    n_keys = min(a.rows, 200_000)
    t0 = time.perf_counter()
    for i in range(n_keys):
        request_key(slot, Request(i % 8, "m_staging", "m_staging", "m", prompt, 16, True))
    key_s = time.perf_counter() - t0

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"store: {folder} ({a.rows:,} entries, {size / 2**20:,.0f} MiB on disk, {size / a.rows:.0f} B/entry)")
    print(f"write (new results, one transaction per {UNIT}): {rate(a.rows, write_s)}")
    print(f"lookup, all hits:                          {rate(a.rows, hit_s)}")
    print(f"lookup, all misses:                        {rate(a.rows, miss_s)}")
    print(f"mark reused (used time + origin):          {rate(a.rows, touch_s)}")
    print(f"key a request (1,500-char report prompt):  {rate(n_keys, key_s)}")
    print(f"peak RSS: {peak:,.0f} MiB")
    if a.dir is None:
        for p in folder.glob("results.sqlite*"):
            os.unlink(p)


if __name__ == "__main__":
    main()
