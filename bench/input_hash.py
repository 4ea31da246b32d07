"""Cost per GB of identifying inputs by content (radbatch/archive/fingerprint.py), and of the hashlib alternatives.

Writes a file of --mib MiB of random bytes (in the page cache, so this is the CPU cost of hashing; reading from
disk adds the disk's own time, which the run pays anyway when it reads the archive), then times
`fingerprint.content_hashes` on it with an empty cache (first run) and with the cache filled (resume), and
hashlib's sha256/sha1/blake2b/md5 over the same bytes.

    bench/exclusive .venv/bin/python bench/input_hash.py --mib 1024
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    a = ap.parse_args()
    path = a.dir / f"radbatch-hash-{a.mib}.bin"
    if not path.exists() or path.stat().st_size != a.mib << 20:
        with open(path, "wb") as fh:
            for _ in range(a.mib):
                fh.write(os.urandom(1 << 20))
    path.read_bytes() if a.mib <= 2048 else None   # warm the page cache
    cache = tempfile.mkdtemp()
    os.environ["RADBATCH_CACHE"] = cache
    from radbatch.archive import fingerprint
    gib = a.mib / 1024
    out = {"mib": a.mib}
    t0 = time.perf_counter()
    fingerprint.content_hashes([str(path)])
    out["radbatch_first_run_s_per_gib"] = round((time.perf_counter() - t0) / gib, 3)
    t0 = time.perf_counter()
    fingerprint.content_hashes([str(path)])
    out["radbatch_cached_s"] = round(time.perf_counter() - t0, 4)
    for name in ("sha256", "sha1", "blake2b", "md5"):
        h = hashlib.new(name)
        t0 = time.perf_counter()
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        dt = time.perf_counter() - t0
        out[f"{name}_mb_per_s"] = round(a.mib * 1.048576 / dt)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
