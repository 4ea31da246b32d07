"""Owner-only files: everything review writes holds report text (or answers keyed to reports) by design.

Files are created 0600 (and set to 0600 if they existed), folders 0700. A file is written to a temporary name
in the same folder and renamed, so a failed write never leaves half a queue behind. Failures become
StorageError (exit 4).
"""

from __future__ import annotations

import os
from pathlib import Path

from radbatch.errors import StorageError

NOTICE = ("These files hold radiology report text (patient data) by design. They are readable by their owner "
          "only (0600); keep them so, store them where patient data may be stored, and delete them after "
          "the review.")


def private_dir(path: Path) -> Path:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    except OSError as exc:
        raise StorageError(f"cannot create output folder {path}: {exc.strerror or exc}. Choose a writable -o.") from exc
    return path


def write_private(path: Path, data: bytes | str, writer=None) -> Path:
    """Write bytes/str, or call writer(binary file) (e.g. for Parquet), into an owner-only file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            if writer is not None:
                writer(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}. Free space or fix permissions.") from exc
    return path
