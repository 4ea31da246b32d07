"""Stream report archives in (Parquet / CSV files, directories, globs) as record batches.

Memory stays flat: files are read batch by batch and cut into fixed work units by input order. A unit never
spans two files, so a row's identity (source file, row number) and its unit are fixed by the input alone.
"""

from __future__ import annotations

import codecs
import contextlib
import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa

from radbatch.archive import storage
from radbatch.errors import InputError

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


def discover(inputs: list[str]) -> list[Path | str]:
    """Files named, files in directories (sorted), glob matches (sorted); every input must match something.
    s3:// inputs (objects, prefixes, globs over keys) stay URI strings (storage.discover)."""
    out: list[Path | str] = []
    for item in inputs:
        storage.check_uri(item, "an input")
        if storage.is_uri(item):
            out += storage.discover(item, SUFFIXES)
            continue
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
    seen: set = set()
    return [p for p in out if not (_identity(p) in seen or seen.add(_identity(p)))]


def _identity(p: Path | str):
    return p if storage.is_uri(p) else Path(p).resolve()


def _suffix(path: Path | str) -> str:
    return Path(storage.split(path)[1] if storage.is_uri(path) else path).suffix.lower()


def _source(path: Path | str):
    """A context manager giving what pyarrow's readers take: the local path, or an open object."""
    src = storage.open_input(path)
    return contextlib.nullcontext(src) if src is path else src


def _parquet_schema(path: Path | str) -> pa.Schema:
    import pyarrow.parquet as pq
    with _source(path) as src:
        return pq.ParquetFile(src).schema_arrow


def _kind(path: Path | str) -> str:
    suffix = _suffix(path)
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".csv", ".tsv"):
        return "csv"
    raise InputError(f"{path}: unknown file type {suffix!r}; radbatch reads .parquet and .csv files")


def inspect(index: int, path: Path | str, encoding: str) -> InputFile:
    kind = _kind(path)
    st = storage.stat(path)
    if st is None:
        raise InputError(f"input file not found: {path}")
    size, mtime_ns = st
    if size == 0:
        raise InputError(f"{path} is empty (0 bytes). Remove it or re-export it.")
    rows = None
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq
            with _source(path) as src:
                meta = pq.ParquetFile(src)
                columns, rows = tuple(meta.schema_arrow.names), meta.metadata.num_rows
        else:
            with _source(path) as src:
                columns = tuple(_open_csv(path, encoding, {}, src).schema.names)
    except (pa.ArrowException, OSError, UnicodeDecodeError, LookupError) as exc:
        if kind == "csv" and "Empty CSV file" in str(exc):  # a header line alone, without a line break
            raise InputError(f"{path} has no data rows (only a header?). Remove it or re-export it.") from None
        raise InputError(f"{path} cannot be read as {kind}: {_safe(exc)}") from None
    if kind == "csv":
        check_quoting(path, encoding)
    if rows == 0:
        raise InputError(f"{path} has no rows. Remove it from the input or re-export it.")
    dup = next((c for c in columns if columns.count(c) > 1), None)
    if dup is not None:
        raise InputError(f"{path} has more than one column named {dup!r}; rename them (columns are used by name).")
    return InputFile(index, str(path), kind, columns, rows, size, mtime_ns)


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
    schema = _parquet_schema(f.path)
    for option, column in cols.named().items():
        t = schema.field(column).type
        flag = "--" + option.replace("_", "-") + "-column"
        if column in cols.text_columns() and not _is_text(t):
            raise InputError(f"column {column!r} in {f.path} holds {t} values, not text. Use {flag} to name the "
                             "text column.")
        if option == "id" and not _single_value(t):
            raise InputError(f"column {column!r} in {f.path} holds {t} values; report ids must be single values "
                             f"(text or numbers). Use {flag}.")


def _single_value(t: pa.DataType) -> bool:
    """Ids are compared as text (duplicate check): a type that cannot be cast to text (struct, list, map) is
    not an id."""
    import pyarrow.compute as pc
    if pa.types.is_nested(t):
        return False
    try:
        pc.cast(pa.array([], t), pa.string())
    except (pa.ArrowException, TypeError, ValueError):
        return False
    return True


def part_type(f: InputFile, column: str, schema: pa.Schema | None = None) -> pa.DataType:
    """The Arrow type a kept input column has in the output: CSV columns and binary columns become text."""
    if f.kind == "csv":
        return pa.string()
    if schema is None:
        schema = _parquet_schema(f.path)
    t = schema.field(column).type
    return pa.string() if pa.types.is_binary(t) or pa.types.is_large_binary(t) else t


def check_kept_types(files: list[InputFile], keep: list[str], one_output: bool) -> None:
    """Decided before any work: the files written into one output file must agree on each kept column's type
    (e.g. int64 ids in a Parquet file and text ids in a CSV cannot share a column). Exit 2 names the column, two
    files and their types; an output directory (-o DIR/) writes one file per input and needs no agreement."""
    if not one_output or len(files) < 2 or not keep:
        return
    seen = {c: (files[0], pa.schema([])) for c in keep}
    for f in files:
        schema = _parquet_schema(f.path) if f.kind == "parquet" else None
        for column in keep:
            first, unified = seen[column]
            field = pa.schema([pa.field(column, part_type(f, column, schema))])
            if not unified.names or pa.types.is_null(unified.field(column).type):
                first = f   # the file the column's type comes from (an all-null column takes any type)
            try:
                seen[column] = first, pa.unify_schemas([unified, field], promote_options="permissive")
            except (pa.ArrowException, TypeError, ValueError):
                raise InputError(
                    f"column {column!r} holds {unified.field(column).type} values in {first.path} but "
                    f"{field.field(column).type} values in {f.path}; one output file needs one type per column. "
                    "Convert the column to one type (e.g. ids as text) in one of the files, drop it with "
                    "--keep-columns, or write one output per input file with -o DIR/.") from None


def _safe(exc: BaseException) -> str:
    """An Arrow/codec error without the row content it sometimes quotes (it may be patient text)."""
    msg = str(exc).split("\n")[0]
    m = re.search(r"(CSV parse error:)?\s*(Expected \d+ columns, got \d+)", msg)
    if m:
        return f"CSV parse error: {m.group(2)} (broken quoting or a stray delimiter?)"
    if isinstance(exc, UnicodeDecodeError):
        return f"bytes are not valid {exc.encoding} at offset {exc.start}; pass --encoding (e.g. cp1252)"
    return msg[:200].split(":")[0] if len(msg) > 200 else msg


SCAN_BLOCK = 1 << 24


def _scan_chunks(path: Path | str, encoding: str):
    """The file as bytes blocks where the encoding writes '"', delimiters and line breaks as ASCII (UTF-8,
    cp1252, latin-1, ...), else as decoded text blocks (UTF-16, ...)."""
    try:
        ascii_like = all(c.encode(encoding) == c.encode("ascii") for c in '",\t\r\n')
    except (LookupError, UnicodeError):
        ascii_like = False
    decoder = None if ascii_like else codecs.getincrementaldecoder(encoding)(errors="replace")
    with (storage.open_input(path) if storage.is_uri(path) else open(path, "rb")) as fh:
        if ascii_like and codecs.lookup(encoding).name in ("utf-8", "utf-8-sig"):
            head = fh.read(3)
            if head != codecs.BOM_UTF8:   # Arrow skips a UTF-8 byte order mark
                yield head
        while block := fh.read(SCAN_BLOCK):
            yield block if decoder is None else decoder.decode(block)
    if decoder is not None:
        yield decoder.decode(b"", final=True)


def _quote_problem(chunks, delimiter: str) -> tuple[str, int, int] | None:
    """Follows Arrow's CSV quoting (a quote opens a quoted field only at the start of a field; "" inside is a
    quote) through the file, one find() per quote. Returns (problem, offset of the opening quote, offset where
    it went wrong) for a quoted field that never closes ('eof': Arrow would read every later line into it) or
    whose closing quote is followed by more text instead of a delimiter or line break ('after': Arrow would glue
    the text on, which is how a missing quote usually shows once a later field is quoted); else None."""
    in_quote, open_at, base, carry, prev = False, -1, 0, None, None
    pending = iter(chunks)
    chunk = next(pending, None)
    while chunk is not None:
        nxt_chunk = next(pending, None)
        final = nxt_chunk is None
        buf = chunk if carry is None else carry + chunk
        if carry is None:   # first block: constants in the block's type
            q, ends = ('"', (delimiter, "\r", "\n")) if isinstance(buf, str) else \
                (b'"', (delimiter.encode(), b"\r", b"\n"))
            prev = buf[:0]
        limit = len(buf) if final else max(len(buf) - 1, 0)   # the last char waits for its successor
        pos = 0
        while (i := buf.find(q, pos, limit)) >= 0:
            if not in_quote:
                before = buf[i - 1:i] if i > 0 else prev
                if base + i == 0 or before in ends:
                    in_quote, open_at = True, base + i
                pos = i + 1
                continue
            after = buf[i + 1:i + 2]
            if after == q:
                pos = i + 2           # "" inside a quoted field
            elif after and after not in ends:
                return "after", open_at, base + i
            else:
                in_quote, pos = False, i + 1
        cut = max(pos, limit)
        prev = buf[cut - 1:cut] if cut > 0 else prev
        carry, base, chunk = buf[cut:], base + cut, nxt_chunk
    return ("eof", open_at, base) if in_quote else None


def _line_of(path: Path | str, encoding: str, offset: int) -> int:
    """1-based line (\n, \r\n or \r) of a byte/char offset as _scan_chunks counts them."""
    line, seen, last = 1, 0, None
    for chunk in _scan_chunks(path, encoding):
        part = chunk[:max(offset - seen, 0)]
        cr, lf = ("\r", "\n") if isinstance(part, str) else (b"\r", b"\n")
        line += part.count(lf) + part.count(cr) - part.count(cr + lf)
        if last == cr and part[:1] == lf:
            line -= 1
        last = part[-1:] or last
        seen += len(chunk)
        if seen >= offset:
            break
    return line


def check_quoting(path: Path | str, encoding: str) -> None:
    """An unterminated or broken quote is an input error (exit 2) naming the file and line, never a merged row.
    Arrow's reader (newlines_in_values) accepts both and silently reads later rows into one report."""
    delimiter = "\t" if _suffix(path) == ".tsv" else ","
    try:
        problem = _quote_problem(_scan_chunks(path, encoding), delimiter)
        if problem is None:
            return
        kind, opened, bad = problem
        line, bad_line = _line_of(path, encoding, opened), _line_of(path, encoding, bad)
    except OSError as exc:
        raise InputError(f"{path} cannot be read as csv: {exc.strerror or type(exc).__name__}") from None
    sep = "tab" if delimiter == "\t" else "comma"
    if kind == "eof":
        raise InputError(f"{path} line {line}: a quoted field opens there and is never closed, so every later line "
                         "would be read into that one field (broken CSV quoting). Close or remove the quote.")
    raise InputError(f"{path} line {line}: the quoted field that opens there closes on line {bad_line} with more "
                     f"text after the closing quote instead of a {sep} or line break: a quote is missing or stray "
                     "(broken CSV quoting). Fix the quoting.")


def _open_csv(path: Path | str, encoding: str, types: dict, source=None):
    """source: an open object (s3://), else the path is opened."""
    import pyarrow.csv as pacsv
    delimiter = "\t" if _suffix(path) == ".tsv" else ","
    return pacsv.open_csv(
        path if source is None else source,
        read_options=pacsv.ReadOptions(encoding=encoding, block_size=1 << 22),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False,
                                             quoted_strings_can_be_null=False))


def iter_batches(f: InputFile, encoding: str, text_columns: set[str]) -> Iterator[pa.RecordBatch]:
    """Record batches of the file. CSV columns are read as strings (text columns as bytes under UTF-8,
    so one undecodable report becomes a row status, not a failed file)."""
    path = f.path if storage.is_uri(f.path) else Path(f.path)
    try:
        with _source(path) as src:
            if f.kind == "parquet":
                import pyarrow.parquet as pq
                yield from pq.ParquetFile(src).iter_batches(batch_size=BATCH_ROWS)
                return
            utf8 = encoding.lower().replace("-", "").replace("_", "") in ("utf8",)
            types = {c: (pa.binary() if utf8 and c in text_columns else pa.string()) for c in f.columns}
            reader = _open_csv(path, encoding, types, src if storage.is_uri(path) else None)
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
    return [{"path": absolute(f.path), "size": f.size, "sha256": hashes[absolute(f.path)]} for f in files]


def absolute(path: str) -> str:
    """A local path made absolute; an s3:// URI as it is."""
    return path if storage.is_uri(path) else os.path.abspath(path)
