"""Stream report archives in (Parquet / CSV files, directories, globs) as record batches.

Memory stays flat: files are read batch by batch and cut into fixed work units by input order. A unit never
spans two files, so a row's identity (source file, row number) and its unit are fixed by the input alone.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa

from .errors import InputError

SUFFIXES = (".parquet", ".pq", ".csv", ".tsv")
BATCH_ROWS = 1024


@dataclass(frozen=True)
class ColumnOptions:
    id: str = "report_id"
    text: str = "report_text"
    findings: str | None = None
    impression: str | None = None
    patient: str | None = None
    date: str | None = None
    modality: str | None = None
    question: str | None = None
    hypothesis: str | None = None

    def named(self) -> dict[str, str]:
        """option name -> column, for the columns the user asked for."""
        return {k: v for k, v in self.__dict__.items() if v}

    def text_columns(self) -> set[str]:
        return {v for k, v in self.named().items() if k in ("text", "findings", "impression", "question",
                                                              "hypothesis")}


@dataclass(frozen=True)
class InputFile:
    index: int
    path: str
    kind: str            # parquet | csv
    columns: tuple[str, ...]
    rows: int | None     # known for Parquet
    size: int
    mtime_ns: int


def discover(inputs: list[str]) -> list[Path]:
    """Files named, files in directories (sorted), glob matches (sorted); every input must match something."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in SUFFIXES and f.is_file())
            if not found:
                raise InputError(f"directory {p} holds no .parquet or .csv files")
            out += found
        elif p.exists():
            out.append(p)
        elif glob.has_magic(item):
            found = sorted(Path(f) for f in glob.glob(item) if Path(f).is_file())
            if not found:
                raise InputError(f"no files match {item!r}")
            out += found
        else:
            raise InputError(f"input file not found: {p}")
    seen = set()
    return [p for p in out if not (p.resolve() in seen or seen.add(p.resolve()))]


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".csv", ".tsv"):
        return "csv"
    raise InputError(f"{path}: unknown file type {suffix!r}; radbatch reads .parquet and .csv files")


def inspect(index: int, path: Path, encoding: str) -> InputFile:
    kind = _kind(path)
    st = path.stat()
    if st.st_size == 0:
        raise InputError(f"{path} is empty (0 bytes). Remove it or re-export it.")
    rows = None
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq
            meta = pq.ParquetFile(path)
            columns, rows = tuple(meta.schema_arrow.names), meta.metadata.num_rows
        else:
            columns = tuple(_open_csv(path, encoding, {}).schema.names)
    except (pa.ArrowException, OSError, UnicodeDecodeError, LookupError) as exc:
        if kind == "csv" and "Empty CSV file" in str(exc):  # a header line alone, without a line break
            raise InputError(f"{path} has no data rows (only a header?). Remove it or re-export it.") from None
        raise InputError(f"{path} cannot be read as {kind}: {_safe(exc)}") from None
    if rows == 0:
        raise InputError(f"{path} has no rows. Remove it from the input or re-export it.")
    dup = next((c for c in columns if columns.count(c) > 1), None)
    if dup is not None:
        raise InputError(f"{path} has more than one column named {dup!r}; rename them (columns are used by name).")
    return InputFile(index, str(path), kind, columns, rows, st.st_size, st.st_mtime_ns)


def check_columns(files: list[InputFile], cols: ColumnOptions) -> None:
    for f in files:
        for option, column in cols.named().items():
            if column not in f.columns:
                flag = "--" + option.replace("_", "-") + "-column"
                raise InputError(f"column {column!r} not found in {f.path}; columns are: "
                                 f"{', '.join(f.columns)}. Use {flag}.")
        if f.kind == "parquet":
            _check_types(f, cols)


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _is_text(t.value_type)
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t) or pa.types.is_null(t) or str(t) in ("string_view", "binary_view"))


def _check_types(f: InputFile, cols: ColumnOptions) -> None:
    """Text columns must hold text, the id column single values (CSV columns are always text)."""
    import pyarrow.parquet as pq
    schema = pq.read_schema(f.path)
    for option, column in cols.named().items():
        t = schema.field(column).type
        flag = "--" + option.replace("_", "-") + "-column"
        if column in cols.text_columns() and not _is_text(t):
            raise InputError(f"column {column!r} in {f.path} holds {t} values, not text. Use {flag} to name the "
                             "text column.")
        if option == "id" and pa.types.is_nested(t) and not pa.types.is_struct(t):
            raise InputError(f"column {column!r} in {f.path} holds {t} values; report ids must be single values "
                             f"(text or numbers). Use {flag}.")


def _safe(exc: BaseException) -> str:
    """An Arrow/codec error without the row content it sometimes quotes (it may be patient text)."""
    msg = str(exc).split("\n")[0]
    m = re.search(r"(CSV parse error:)?\s*(Expected \d+ columns, got \d+)", msg)
    if m:
        return f"CSV parse error: {m.group(2)} (broken quoting or a stray delimiter?)"
    if isinstance(exc, UnicodeDecodeError):
        return f"bytes are not valid {exc.encoding} at offset {exc.start}; pass --encoding (e.g. cp1252)"
    return msg[:200].split(":")[0] if len(msg) > 200 else msg


def _open_csv(path: Path, encoding: str, types: dict):
    import pyarrow.csv as pacsv
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    return pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(encoding=encoding, block_size=1 << 22),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False,
                                             quoted_strings_can_be_null=False))


def iter_batches(f: InputFile, encoding: str, text_columns: set[str]) -> Iterator[pa.RecordBatch]:
    """Record batches of the file. CSV columns are read as strings (text columns as bytes under UTF-8,
    so one undecodable report becomes a row status, not a failed file)."""
    path = Path(f.path)
    try:
        if f.kind == "parquet":
            import pyarrow.parquet as pq
            yield from pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS)
            return
        utf8 = encoding.lower().replace("-", "").replace("_", "") in ("utf8",)
        types = {c: (pa.binary() if utf8 and c in text_columns else pa.string()) for c in f.columns}
        reader = _open_csv(path, encoding, types)
        for batch in reader:
            yield batch
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: {_safe(exc)}") from None


def iter_units(f: InputFile, encoding: str, text_columns: set[str], unit_size: int,
               start_row: int = 0) -> Iterator[tuple[int, pa.Table]]:
    """(first row number, table of up to unit_size rows), cut by input order within the file."""
    buf: list[pa.RecordBatch] = []
    buffered, row = 0, start_row
    for batch in iter_batches(f, encoding, text_columns):
        buf.append(batch)
        buffered += batch.num_rows
        if buffered < unit_size:
            continue
        table = pa.Table.from_batches(buf)
        cut = (table.num_rows // unit_size) * unit_size
        for off in range(0, cut, unit_size):
            yield row, table.slice(off, unit_size)
            row += unit_size
        rest = table.slice(cut)
        buf, buffered = rest.to_batches(), rest.num_rows
    if buffered:
        yield row, pa.Table.from_batches(buf)


def decode(value, encoding_label: str = "utf-8") -> tuple[str | None, bool]:
    """(text, ok). Bytes are decoded strictly; undecodable bytes give (None, False)."""
    if value is None or isinstance(value, str):
        return value, True
    if not isinstance(value, (bytes, bytearray, memoryview)):
        return None, False
    try:
        return bytes(value).decode("utf-8"), True
    except UnicodeDecodeError:
        return None, False


def file_identities(files: list[InputFile]) -> list[dict]:
    """What the run key knows of each input: its path and its content (sha256; fingerprint.py), never its
    mtime, which an edit can put back (and a mere touch would change)."""
    from .fingerprint import content_hashes
    try:
        hashes = content_hashes([f.path for f in files])
    except OSError as exc:
        raise InputError(f"cannot read an input file to fingerprint it: {exc.strerror} ({exc.filename})") from None
    return [{"path": os.path.abspath(f.path), "size": f.size, "sha256": hashes[os.path.abspath(f.path)]}
            for f in files]
