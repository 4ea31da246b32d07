"""The run's output: atomic parts in a work directory, resume bookkeeping, and the final sorted Parquet.

Layout: `-o out.parquet` keeps its work in `out.parquet.radbatch/`; `-o out/` keeps it in `out/_radbatch/` and
writes one final file per input file. `run.json` holds the run key; `parts/` holds Parquet parts, each written
to a temp file, fsynced and renamed, listing the work units it holds in its key-value metadata. A part whose
footer cannot be read (a crash mid-write on a file system without atomic rename) is deleted and recomputed.

Every file radbatch writes here is owner-only (0600, folders 0700) whatever the umask, and every file the resume
logic trusts (run.json, parts, priors, final outputs) is written to a temp file, fsynced, renamed, and its folder
fsynced. When a run completes, the work directory keeps only run.json: parts, priors and temp files (copies of
report text) are removed.

An s3:// output (`-o s3://bucket/out.parquet`, or `-o s3://bucket/prefix/` for one object per input file) keeps
its work directory on a local disk (storage.work_dir: $RADBATCH_WORK_DIR or $RADBATCH_CACHE/work/<hash of the
URI>.radbatch), and each final file is uploaded as one object when it is finished and checked (storage.upload):
object stores have no atomic rename.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from radbatch.archive import storage
from radbatch.archive.private_files import (
    DIR_MODE,
    open_private,
    private_dirs,
    remove_quietly,
    write_atomic,
)
from radbatch.archive.private_files import fsync_dir as _fsync_dir
from radbatch.errors import InputError, StorageError

UNITS_KEY = b"radbatch.units"
META_KEY = "radbatch"
DIR_OUTPUT_NAME = re.compile(r"\d{5}-.+\.parquet")   # one final file per input file in a directory output


def storage_error(action: str, path: Path | str, exc: BaseException) -> StorageError:
    reason = getattr(exc, "strerror", None) or str(exc).split("\n")[0][:200]
    return StorageError(f"cannot {action} {path}: {reason}. Finished parts are kept; free space or fix "
                        "permissions and rerun the same command to resume.")


def read_provenance(path: Path | str) -> dict:
    """The provenance radbatch writes into a final file's Parquet key-value metadata (a file or an object)."""
    source = storage.open_input(path)
    try:
        meta = pq.ParquetFile(source).metadata.metadata or {}
    finally:
        if source is not path:
            source.close()
    return json.loads(meta.get(META_KEY.encode(), b"{}"))


def final_run_key(path: Path | str) -> str | None:
    try:
        return read_provenance(path).get("run_key")
    except (OSError, pa.ArrowException, ValueError):
        return None


def remove_output(path: Path | str) -> None:
    """Delete a final file or object (an earlier run's, or one that failed its check)."""
    if storage.is_uri(path):
        storage.delete(path)
    else:
        Path(path).unlink(missing_ok=True)


class RunStore:
    def __init__(self, output: str):
        storage.check_uri(output, "the output (-o)")
        self.remote = storage.is_uri(output)
        self.output: Path | str
        if self.remote:   # a URI string: Path would fold its '//'; a trailing '/' asks for one object per file
            self.dir_mode, self.output = output.endswith("/"), output
            self.work = storage.work_dir(output)
        else:
            self.dir_mode = output.endswith(os.sep) or Path(output).is_dir()
            self.output = Path(output)
            self.work = self.output / "_radbatch" if self.dir_mode else Path(output + ".radbatch")
        self.parts = self.work / "parts"

    # -- state -----------------------------------------------------------------------------------------
    def final_paths(self, files) -> list:
        """The final file(s): Paths, or s3:// URIs for an object-store output."""
        if not self.dir_mode:
            return [self.output]
        names = [f"{f.index:05d}-{Path(f.path).stem}.parquet" for f in files]
        if self.remote:
            return [f"{self.output}{name}" for name in names]
        return [Path(self.output) / name for name in names]

    def complete_key(self) -> str | None:
        """The run key of a finished output, if there is one."""
        if self.dir_mode:
            try:
                info = json.loads((self.work / "run.json").read_text())
            except (OSError, ValueError):
                return None
            return info.get("run_key") if info.get("complete") else None
        return final_run_key(self.output) if self._output_exists() else None

    def run_info(self) -> dict | None:
        """run.json of this output's run, finished or not (run key, key material, the routing it started
        with, whether --restart started it), if there is one."""
        try:
            info = json.loads((self.work / "run.json").read_text())
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def pending_info(self) -> dict | None:
        """run.json of an unfinished run, if there is one."""
        info = self.run_info()
        return None if info is None or info.get("complete") else info

    def pending_key(self) -> str | None:
        return (self.pending_info() or {}).get("run_key")

    def output_taken(self) -> bool:
        """A single-file output path that exists but is not a radbatch output of any run."""
        return not self.dir_mode and self._output_exists() and final_run_key(self.output) is None

    def _output_exists(self) -> bool:
        if not self.remote:
            return self.output.exists()
        try:
            return storage.exists(self.output)
        except InputError as exc:   # listing the bucket failed: say so as a storage problem
            raise StorageError(str(exc).replace("cannot read", "cannot check the output")) from None

    def begin(self, run_key: str, material: dict, restart: bool, routing: dict | None = None) -> None:
        """Start or continue the run. `restart` wipes the work directory (and a directory output's final files)
        and records that --restart started this run, so that rerunning the same --restart command after an
        interruption continues it instead of wiping it again."""
        try:
            if restart:
                shutil.rmtree(self.work, ignore_errors=True)
                for old in self.stale_outputs(set()):
                    remove_output(old)
            private_dirs(self.parts)
            os.chmod(self.work, DIR_MODE)   # a work directory left by an older radbatch may be 0755
            os.chmod(self.parts, DIR_MODE)
            for tmp in self.work.glob(".*.tmp"):   # a temp file of a crashed write (run.json, final output)
                remove_quietly(tmp)
            if self.pending_key() != run_key:
                self._write_json({"run_key": run_key, "complete": False, "material": material,
                                  "restart": restart, "routing": routing or {}})
        except OSError as exc:
            raise storage_error("create the work directory", self.work, exc) from None

    def _write_json(self, info: dict) -> None:
        write_atomic(self.work / "run.json", json.dumps(info, indent=1, sort_keys=True).encode())

    def stale_outputs(self, keep: set) -> list:
        """A directory output's final files (radbatch outputs named like ours) that are not in `keep`: the
        outputs of an earlier run, which readers of the folder (or prefix) would otherwise mix with this run's."""
        if not self.dir_mode:
            return []
        if self.remote:
            found: list = storage.listing(str(self.output))
        else:
            folder = Path(self.output)
            found = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
        return sorted((p for p in found if DIR_OUTPUT_NAME.fullmatch(Path(p).name) and p not in keep
                       and final_run_key(p) is not None), key=str)

    def mark_complete(self) -> None:
        try:
            info = json.loads((self.work / "run.json").read_text())
            info["complete"] = True
            self._write_json(info)
        except OSError as exc:
            raise storage_error("mark the run complete in", self.work, exc) from None

    # -- parts -----------------------------------------------------------------------------------------
    def done_units(self) -> dict[str, Path]:
        """unit id -> part file, from every part whose footer reads back; broken parts are removed."""
        done: dict[str, Path] = {}
        for part in sorted(self.parts.glob("part-*.parquet")):
            try:
                meta = pq.read_schema(part).metadata or {}
                units = json.loads(meta[UNITS_KEY])
            except (OSError, pa.ArrowException, KeyError, ValueError):
                remove_quietly(part)
                continue
            for u in units:
                done[u] = part
        for tmp in self.parts.glob(".tmp-*"):
            remove_quietly(tmp)
        return done

    def write_part(self, file_index: int, table: pa.Table, unit_ids: list[str]) -> Path:
        meta = dict(table.schema.metadata or {})
        meta[UNITS_KEY] = json.dumps(unit_ids).encode()
        table = table.replace_schema_metadata(meta)
        name = f"part-f{file_index:05d}-{uuid.uuid4().hex[:12]}.parquet"
        tmp, final = self.parts / f".tmp-{name}", self.parts / name
        try:
            with open_private(tmp) as fh:
                pq.write_table(table, fh, compression="zstd")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
            _fsync_dir(self.parts)
        except OSError as exc:
            remove_quietly(tmp)
            raise storage_error("write a part in", self.parts, exc) from None
        return final

    def parts_of(self, file_index: int) -> list[Path]:
        return sorted(self.parts.glob(f"part-f{file_index:05d}-*.parquet"))

    def cleanup_parts(self) -> None:
        """After a complete run the work directory keeps only run.json (what "nothing to do" and --restart read):
        parts, priors and temp files hold report text radbatch copied for its own use."""
        shutil.rmtree(self.parts, ignore_errors=True)
        try:
            leftovers = [p for p in self.work.iterdir() if p.name != "run.json"] if self.work.is_dir() else []
        except OSError:
            return
        for p in leftovers:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                remove_quietly(p)
