"""Input identity by content: an input file is known by its sha256, so an archive edited in place (same size, its
mtime put back) never resumes onto parts computed from the old bytes.

Hashing reads every byte once (sha256 runs at about 1 GB/s on one core with SHA-NI; docs/reliability.md has the
measured cost per GB). A cache in $RADBATCH_CACHE/sha256-files.json spares a resume the rehash (model and
adapter files use it too, radbatch.heads.models.sha256_file). It is keyed by the path
and (size, mtime_ns, ctime_ns, inode, device): a user can set mtime back, never ctime, which every write (and
utime, chmod, rename) moves, so an edited file always misses the cache and is hashed again. One entry per path:
the cache grows with the number of input files seen, not with the number of runs.

An s3:// object is hashed by streaming it, on every run and never cached: S3's ETag is an MD5 of the content only
for single-part uploads, and Last-Modified (one-second resolution, set by the server) cannot tell two writes in
the same second apart, so neither is a sound stand-in for the content.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from radbatch.errors import InputError

from .storage import is_uri, open_stream

BLOCK = 1 << 20


def _cache_file() -> Path:
    return Path(os.environ.get("RADBATCH_CACHE", Path.home() / ".cache" / "radbatch")) / "sha256-files.json"


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def hash_file(path: str) -> str:
    """sha256 of a local file's or an s3:// object's bytes, streamed."""
    h = hashlib.sha256()
    try:
        with open_stream(path) if is_uri(path) else open(path, "rb") as fh:
            while block := fh.read(BLOCK):
                h.update(block)
    except OSError as exc:
        if not is_uri(path):
            raise
        raise InputError(f"cannot read {path} to fingerprint it: {exc.strerror or type(exc).__name__}") from None
    return h.hexdigest()


def content_hashes(paths: list[str]) -> dict[str, str]:
    """sha256 of each file (by absolute path), from the cache where the file's stat stamp is unchanged."""
    cache_file = _cache_file()
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    out, changed = {}, False
    for p in paths:
        if is_uri(p):   # an s3:// object: streamed and hashed on every run (the module docstring says why)
            out[p] = hash_file(p)
            continue
        path = os.path.abspath(p)
        before = _stamp(os.stat(path))
        entry = cache.get(path)
        if isinstance(entry, dict) and entry.get("stat") == before:
            out[path] = entry["sha256"]
            continue
        digest = hash_file(path)
        if _stamp(os.stat(path)) != before:   # written to while we read it: do not trust (or cache) the hash
            digest = hash_file(path)
            before = None
        out[path] = digest
        if before is not None:
            cache[path], changed = {"stat": before, "sha256": digest}, True
    if changed:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache))
            os.replace(tmp, cache_file)
        except OSError:
            pass  # a cache we cannot write only costs time
    return out
