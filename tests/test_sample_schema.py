"""`radbatch sample` output files: schema, determinism, CSV round trip, messy rows, the CLI."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from radbatch.sample import archive
from radbatch.sample.archive import SampleOptions, write_archive
from radbatch.cli.sample import sample

REPO = Path(__file__).resolve().parents[1]

BASE_COLUMNS = {
    "report_id": pa.string(),
    "accession": pa.string(),
    "patient_id": pa.string(),
    "study_date": pa.date32(),
    "modality": pa.string(),
    "report_type": pa.string(),
    "report_text": pa.string(),
    "question": pa.string(),
    "hypothesis": pa.string(),
    "split": pa.string(),
}


def parse_type(text: str) -> pa.DataType:
    """The recipe type grammar: string | list<T> | struct<name: T, ...>."""
    text = text.strip()
    if text == "string":
        return pa.string()
    if text.startswith("list<") and text.endswith(">"):
        return pa.list_(parse_type(text[5:-1]))
    if text.startswith("struct<") and text.endswith(">"):
        fields, depth, start, body = [], 0, 0, text[7:-1]
        for i, ch in enumerate(body + ","):
            depth += ch == "<"
            depth -= ch == ">"
            if ch == "," and depth == 0:
                name, _, inner = body[start:i].partition(":")
                fields.append((name.strip(), parse_type(inner)))
                start = i + 1
        return pa.struct(fields)
    raise ValueError(f"unknown recipe type {text!r}")


def recipe_gold_columns() -> dict[str, pa.DataType]:
    columns = {}
    for path in sorted((REPO / "recipes" / "tasks").glob("*.toml")):
        recipe = tomllib.loads(path.read_text())
        for column in recipe["columns"]:
            columns[f"gold__{recipe['id']}__{column['name']}"] = parse_type(column["type"])
    return columns


def write(tmp_path: Path, name: str, **kw) -> Path:
    out = tmp_path / name
    write_archive(SampleOptions(output=out, **kw))
    return out


def test_gold_columns_have_the_names_and_types_annotate_declares(tmp_path):
    schema = pq.read_schema(write(tmp_path, "a.parquet", rows=50))
    expected = recipe_gold_columns()
    assert len(expected) == 24
    written = {f.name: f.type for f in schema if f.name.startswith("gold__")}
    assert written.keys() == expected.keys()
    for name, dtype in expected.items():
        # list item field names are not part of the recipe grammar; compare the value types
        assert written[name].equals(dtype) or str(written[name]).replace("item: ", "") == str(dtype).replace("item: ", ""), name


def test_base_columns_come_first_with_their_types(tmp_path):
    for gold in (True, False):
        schema = pq.read_schema(write(tmp_path, f"{gold}.parquet", rows=20, gold=gold))
        assert schema.names[: len(BASE_COLUMNS)] == list(BASE_COLUMNS)
        assert all(schema.field(n).type == t for n, t in BASE_COLUMNS.items())
        assert any(n.startswith("gold__") for n in schema.names) == gold


def test_rows_ids_dates_and_patient_order(tmp_path):
    table = pq.read_table(write(tmp_path, "a.parquet", rows=700, seed=3))
    rows = table.to_pylist()
    assert table.num_rows == 700
    assert len({r["report_id"] for r in rows}) == 700
    assert all(re.fullmatch(r"MRN\d{8}", r["patient_id"]) and re.fullmatch(r"ACC\d{10}", r["accession"]) for r in rows)
    seen, last = set(), None
    for r in rows:  # one patient's reports are consecutive and in date order
        if r["patient_id"] != (last or {}).get("patient_id"):
            assert r["patient_id"] not in seen
            seen.add(r["patient_id"])
        else:
            assert r["study_date"] >= last["study_date"]
        last = r
    assert {r["report_type"] for r in rows} >= {"chest_xr", "onc_ct", "birads", "lungrads"}
    assert any("XR CHEST" == r["modality"] for r in rows) and any("MG BREAST" == r["modality"] for r in rows)


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_same_seed_same_bytes_other_seed_other_words(tmp_path, suffix):
    a = write(tmp_path, f"a.{suffix}", rows=400, seed=7, messy=True)
    b = write(tmp_path, f"b.{suffix}", rows=400, seed=7, messy=True)
    c = write(tmp_path, f"c.{suffix}", rows=400, seed=8, messy=True)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_different_seeds_word_reports_differently():
    texts = [set(archive.sample_table(300, seed=s, gold=False).column("report_text").to_pylist()) for s in (1, 2)]
    assert len(texts[0] & texts[1]) < 5


def test_output_does_not_depend_on_worker_count_and_row_groups_are_fixed(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "ROW_GROUP", 500)
    one = write(tmp_path, "one.parquet", rows=1600, seed=2, workers=1)
    two = write(tmp_path, "two.parquet", rows=1600, seed=2, workers=2)
    assert one.read_bytes() == two.read_bytes()
    meta = pq.ParquetFile(one).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [500, 500, 500, 100]
    assert b"created_by" not in (meta.metadata or {})  # no run-specific key-value metadata


def read_csv(path: Path) -> pa.Table:
    """CSV has no types: every column is text except the date."""
    names = pacsv.read_csv(path, read_options=pacsv.ReadOptions(skip_rows_after_names=10**9)).column_names
    return pacsv.read_csv(
        path,
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.date32() if n == "study_date" else pa.string() for n in names},
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )


def test_csv_round_trips_the_parquet_rows_messy_text_included(tmp_path):
    options = dict(rows=1500, seed=4, messy=True)
    parquet = pq.read_table(write(tmp_path, "a.parquet", **options)).to_pylist()
    csv = read_csv(write(tmp_path, "a.csv", **options)).to_pylist()
    assert len(csv) == len(parquet)
    for p, c in zip(parquet, csv):
        for name, value in p.items():
            if name in ("gold__temporal_comparison__changes", "gold__radiology_ner__entities"):
                assert (json.loads(c[name]) if c[name] is not None else None) == value
            else:
                assert c[name] == value, name


def test_messy_archive_has_what_real_exports_have():
    rows = archive.sample_table(3000, seed=1, messy=True).to_pylist()
    texts = [r["report_text"] for r in rows]
    assert any(t is None for t in texts)
    assert any(t is not None and not t.strip() for t in texts)
    assert len({r["report_id"] for r in rows}) < len(rows)
    assert any(t and len(t) >= 20_000 for t in texts)
    assert any(t and not t.isascii() for t in texts)
    assert any(t and '"' in t for t in texts)
    assert any(t and "\r\n" in t for t in texts)
    for r in rows:  # no text, no gold
        if not (r["report_text"] or "").strip():
            assert all(v is None for k, v in r.items() if k.startswith("gold__"))


def test_clean_archive_reports_are_moderate_in_length():
    lengths = sorted(len(t) for t in archive.sample_table(500, seed=9, gold=False).column("report_text").to_pylist())
    assert 300 <= lengths[len(lengths) // 2] <= 1200
    assert lengths[int(len(lengths) * 0.9)] <= 1600


# -- CLI --------------------------------------------------------------------------------------------------


def run(*args: str):
    return CliRunner().invoke(sample, list(args), catch_exceptions=False)


def test_cli_writes_parquet_and_says_so(tmp_path):
    out = tmp_path / "r.parquet"
    result = run("-n", "30", "--seed", "5", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote 30 reports (34 columns, split=all, seed=5) to {out}\n"
    assert pq.read_metadata(out).num_rows == 30


def test_cli_format_overrides_suffix_and_no_gold(tmp_path):
    out = tmp_path / "r.txt"
    result = run("-n", "10", "-o", str(out), "--format", "csv", "--no-gold", "--split", "test")
    assert result.exit_code == 0, result.output
    table = read_csv(out)
    assert table.num_rows == 10 and set(table.column("split").to_pylist()) == {"test"}
    assert table.column_names == list(BASE_COLUMNS)


@pytest.mark.parametrize(
    "args, message",
    [
        (["-n", "5", "-o", "r.json"], "cannot tell the format of 'r.json' from its suffix; name it .parquet or .csv, or pass --format"),
        (["-n", "0", "-o", "r.parquet"], "--rows must be at least 1, got 0."),
        (["-n", "5", "-o", "r.parquet", "--workers", "0"], "--workers must be at least 1, got 0."),
        (["-n", "5", "-o", "r.parquet", "--split", "val"], "'val' is not one of 'train', 'dev', 'test', 'all'"),
    ],
)
def test_cli_usage_errors_say_how_to_fix_them(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(sample, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_unwritable_output_is_an_error_not_a_traceback(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    from radbatch.cli.main import cli
    result = CliRunner().invoke(cli, ["sample", "-n", "5", "-o", str(blocker / "r.parquet")])
    assert result.exit_code == 4   # a storage error, as annotate's (it was 1 before the one exit-code policy)
    assert result.output.startswith(f"Error: cannot write {blocker / 'r.parquet'}: ")


def test_importing_the_command_is_cheap():
    code = "import sys, radbatch.cli.sample; print(sorted(m for m in ('pyarrow', 'radbatch.sample.archive') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_csv_quotes_embedded_newlines_and_quotes(tmp_path):
    out = write(tmp_path, "a.csv", rows=2000, seed=1, messy=True)
    raw = out.read_bytes()
    table = pacsv.read_csv(io.BytesIO(raw), parse_options=pacsv.ParseOptions(newlines_in_values=True))
    assert table.num_rows == 2000
    assert b'""' in raw  # a double quote inside a field is doubled, RFC 4180 style
