"""Object-storage paths: input archives and outputs given as `s3://bucket/key` URIs, read and written through
pyarrow's S3 filesystem (the AWS SDK inside Arrow).

Credentials come from where every AWS tool finds them: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
(/ AWS_SESSION_TOKEN), AWS_PROFILE and ~/.aws/credentials, or an instance role. radbatch never reads, logs or
records them. A URI that carries credentials (`s3://key:secret@bucket/...`) is refused by `check_uri` before
anything records the path (it goes into `source_file`, the run key, run.json and the output's metadata), and
the refusal does not repeat it.

An S3-compatible store (MinIO, Ceph, moto, ...) is named by an endpoint (`--s3-endpoint URL`, else
AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL); with an endpoint the region is AWS_REGION / AWS_DEFAULT_REGION or
us-east-1, never looked up over the network. Without one (AWS itself) and without a region set, the bucket's
region is asked of S3 once per bucket.

Object stores have no atomic rename, so an output object is uploaded only when the whole file is finished and
checked (see `upload`); the run's work directory (parts, run.json) stays on a local disk (`work_dir`).
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from radbatch.errors import InputError, StorageError

SCHEME = "s3://"
_ANY_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class S3Settings:
    """Where the object store is. Shipped to Ray read tasks (no credentials in it)."""
    endpoint: str | None = None
    region: str | None = None


_settings = S3Settings()


def is_uri(path) -> bool:
    return isinstance(path, str) and path[:5].lower() == SCHEME


def check_uri(text: str, what: str) -> None:
    """Refuse a URI radbatch cannot or must not use, without repeating it (it may carry a secret)."""
    m = _ANY_SCHEME.match(text)
    if not m:
        return
    if m.group(1).lower() != "s3":
        raise InputError(f"{what}: radbatch reads and writes local paths and s3:// URIs, not {m.group(1)}:// "
                         "(mount the store or stage a copy)")
    netloc = text[len(SCHEME):].split("/", 1)[0]
    if "@" in netloc or ":" in netloc:
        raise InputError(f"{what}: the s3:// URI carries credentials (user:secret@ before the bucket); refused "
                         "and not recorded. Give credentials through AWS_ACCESS_KEY_ID and "
                         "AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials, and name only "
                         "s3://bucket/key.")
    if not netloc:
        raise InputError(f"{what}: an s3:// URI needs a bucket: s3://bucket/key")


def configure(endpoint: str | None = None) -> S3Settings:
    """Set (and return) this process's object-store settings: the endpoint given, else the environment's."""
    global _settings
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    if endpoint is not None:
        parts = urlsplit(endpoint)
        if parts.username or parts.password or "@" in parts.netloc:
            raise InputError("--s3-endpoint carries credentials (user:secret@); refused and not recorded. Give "
                             "credentials through AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or "
                             "~/.aws/credentials.")
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise InputError(f"--s3-endpoint {endpoint!r} is not an http(s)://host[:port] URL "
                             "(e.g. http://127.0.0.1:9000)")
        endpoint = f"{parts.scheme}://{parts.netloc}"
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    _settings = S3Settings(endpoint, region)
    return _settings


def settings() -> S3Settings:
    return _settings


def use(s: S3Settings) -> None:
    """Adopt the driver's settings in another process (a Ray read task or node check)."""
    global _settings
    _settings = s


def split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len(SCHEME):].partition("/")
    return bucket, key


def _fs_path(uri: str) -> str:
    bucket, key = split(uri)
    return f"{bucket}/{key}".rstrip("/")


def filesystem(uri: str):
    """The S3 filesystem for this URI's bucket under the current settings (one per endpoint and region)."""
    s = _settings
    region = s.region
    if region is None and s.endpoint is None:
        region = _bucket_region(split(uri)[0])
    return _filesystem(s.endpoint, region or "us-east-1")


@lru_cache(maxsize=None)
def _bucket_region(bucket: str) -> str:
    """AWS only (no endpoint, no AWS_REGION): ask S3 where the bucket lives, once per bucket."""
    from pyarrow.fs import resolve_s3_region
    try:
        return resolve_s3_region(bucket)
    except OSError as exc:
        raise StorageError(f"cannot find the region of bucket {bucket!r}: {_reason(exc)}. Set AWS_REGION.") \
            from None


@lru_cache(maxsize=None)
def _filesystem(endpoint: str | None, region: str):
    from pyarrow.fs import S3FileSystem
    if endpoint is None:
        return S3FileSystem(region=region)
    return S3FileSystem(endpoint_override=endpoint, region=region)


def _reason(exc: BaseException) -> str:
    """Arrow's S3 error, first line only (it names the operation and the AWS error, never credentials)."""
    return str(exc).split("\n")[0][:300]


# -- reading ---------------------------------------------------------------------------------------------
def stat(path) -> tuple[int, int] | None:
    """(size, mtime_ns) of a local file or an object; None when there is none."""
    if not is_uri(path):
        p = Path(path)
        if not p.is_file():
            return None
        st = p.stat()
        return st.st_size, st.st_mtime_ns
    from pyarrow.fs import FileType
    try:
        info = filesystem(path).get_file_info(_fs_path(path))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {_reason(exc)}") from None
    if info.type != FileType.File:
        return None
    return info.size, info.mtime_ns or 0


def open_input(path):
    """What pyarrow's readers take: the local path itself, or a random-access file on the object."""
    if not is_uri(path):
        return path
    return filesystem(path).open_input_file(_fs_path(path))


def discover(item: str, suffixes: tuple[str, ...]) -> list[str]:
    """s3:// inputs: an object, a prefix (ending in '/' or holding objects: its archive files, sorted, not
    recursive), or a glob over keys ('*' stays within one '/' level, as for local globs)."""
    from pyarrow.fs import FileSelector, FileType
    bucket, key = split(item)
    fs = filesystem(item)
    try:
        if glob.has_magic(key):
            fixed = re.split(r"[*?\[]", key, maxsplit=1)[0].rsplit("/", 1)[0] if "/" in key else ""
            infos = fs.get_file_info(FileSelector(f"{bucket}/{fixed}".rstrip("/"), recursive=True,
                                                  allow_not_found=True))
            depth = key.count("/")
            found = sorted(f"{SCHEME}{i.path}" for i in infos if i.type == FileType.File
                           and fnmatch.fnmatchcase(i.path.split("/", 1)[1], key)
                           and i.path.split("/", 1)[1].count("/") == depth)
            if not found:
                raise InputError(f"no objects match {item}")
            return found
        info = fs.get_file_info(_fs_path(item))
        if info.type == FileType.File and not item.endswith("/"):
            return [item]
        if info.type == FileType.Directory:
            infos = fs.get_file_info(FileSelector(_fs_path(item), recursive=False))
            found = sorted(f"{SCHEME}{i.path}" for i in infos if i.type == FileType.File
                           and Path(i.path).suffix.lower() in suffixes)
            if not found:
                raise InputError(f"{item} holds no .parquet or .csv objects")
            return found
    except OSError as exc:
        raise InputError(f"cannot list {item}: {_reason(exc)}") from None
    raise InputError(f"input object not found: {item}")


def open_stream(uri: str):
    """A sequential read stream over an object (fingerprint.hash_file streams it to hash it)."""
    try:
        return filesystem(uri).open_input_stream(_fs_path(uri))
    except OSError as exc:
        raise InputError(f"cannot read {uri}: {_reason(exc)}") from None


def scan(path):
    """A polars LazyFrame over a finished output, local or an object (read through the same filesystem)."""
    import polars as pl
    if not is_uri(path):
        return pl.scan_parquet(path)
    import pyarrow.dataset as ds
    return pl.scan_pyarrow_dataset(ds.dataset(_fs_path(path), filesystem=filesystem(path), format="parquet"))


# -- writing ---------------------------------------------------------------------------------------------
def work_dir(uri: str) -> Path:
    """The local work directory (parts, run.json) of an s3:// output: $RADBATCH_WORK_DIR, else
    $RADBATCH_CACHE (default ~/.cache/radbatch)/work/, in a folder named by a hash of the output URI, so a rerun
    of the same command resumes from the same parts."""
    root = os.environ.get("RADBATCH_WORK_DIR") or Path(
        os.environ.get("RADBATCH_CACHE", Path.home() / ".cache" / "radbatch")) / "work"
    return Path(root) / (hashlib.sha256(uri.encode()).hexdigest()[:24] + ".radbatch")


def exists(uri: str) -> bool:
    return stat(uri) is not None


def upload(local: Path, uri: str) -> None:
    """Put a finished, checked local file as one object (single or multipart upload). The object appears only
    when the upload completes: a run killed before or during the upload leaves no object (an interrupted
    multipart upload stays invisible; a bucket lifecycle rule removes its parts). Arrow completes an upload whose
    source read failed halfway (its stream closes rather than aborts), so the object is checked against the file's
    size afterwards and deleted if it differs; the source is a finished local file, so that is a disk failure."""
    from pyarrow.fs import LocalFileSystem, copy_files
    size = local.stat().st_size
    try:
        copy_files(str(local), _fs_path(uri), source_filesystem=LocalFileSystem(),
                   destination_filesystem=filesystem(uri))
        info = stat(uri)
    except (OSError, InputError) as exc:
        raise StorageError(f"cannot upload the output to {uri}: {_reason(exc)}. Finished parts are kept; rerun "
                           "the same command to resume.") from None
    if info is None or info[0] != size:
        delete(uri)
        raise StorageError(f"the output uploaded to {uri} has {info and info[0]} bytes, the file {size}; it was "
                           "deleted. Rerun the same command.")


def listing(prefix: str) -> list[str]:
    """The objects directly under an s3:// prefix (not recursive), sorted; [] when there are none."""
    from pyarrow.fs import FileSelector, FileType
    try:
        infos = filesystem(prefix).get_file_info(FileSelector(_fs_path(prefix), recursive=False,
                                                              allow_not_found=True))
    except OSError as exc:
        raise StorageError(f"cannot list {prefix}: {_reason(exc)}") from None
    return sorted(f"{SCHEME}{i.path}" for i in infos if i.type == FileType.File)


def delete(uri: str) -> None:
    try:
        filesystem(uri).delete_file(_fs_path(uri))
    except OSError:
        pass


def read_metadata(uri: str) -> dict[bytes, bytes] | None:
    """The key-value metadata of a Parquet object's footer; None if there is no object or no Parquet footer."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        if not exists(uri):
            return None
        with open_input(uri) as fh:
            return pq.ParquetFile(fh).metadata.metadata or {}
    except (OSError, pa.ArrowException, InputError):
        return None
