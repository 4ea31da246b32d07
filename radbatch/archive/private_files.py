"""Files that may hold report text: owner-only (0600, folders 0700) whatever the umask, written atomically.

Every write the resume logic trusts goes to a temp file that is fsynced, renamed over the final path, and then
its folder is fsynced, so a crash or power loss leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path

FILE_MODE, DIR_MODE = 0o600, 0o700


def private_dirs(path: Path) -> None:
    """mkdir -p: every folder it creates is 0700 (Path.mkdir gives parents the umask's mode)."""
    path = Path(path)
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)


def open_private(path: Path, mode: str = "wb"):
    """A new (or truncated) file, 0600 whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        return os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        raise


def fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename, fsync the folder: a crash leaves the old or the new file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open_private(tmp) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        remove_quietly(tmp)
        raise


def move_into_place(tmp: Path, path: Path) -> None:
    """Rename a finished, fsynced temp file to its final path and fsync the folder. Across file systems (a work
    directory on another mount) it is copied to a temp file beside the final path first, then renamed."""
    try:
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        near = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "rb") as src, open_private(near) as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(near, path)
        except BaseException:
            remove_quietly(near)
            raise
        remove_quietly(tmp)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_quietly(path: Path) -> None:
    """Best-effort cleanup: on a read-only or failing file system the error to report is the original one."""
    try:
        Path(path).unlink(missing_ok=True)
    except OSError:
        pass
