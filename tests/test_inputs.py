"""Bad input: a clear message naming the file (exit 2), or a row status; nothing dropped."""

from __future__ import annotations


import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from conftest import run_cli, write_reports


def test_missing_column_lists_columns_and_option(reports_parquet):
    res = run_cli("annotate", reports_parquet, "-o", reports_parquet.with_name("o.parquet"),
                  "--text-column", "text", "--tasks", "none")
    assert res.returncode == 2
    assert (f"column 'text' not found in {reports_parquet}; columns are: report_id, report_text, question. "
            "Use --text-column.") in res.stderr
    assert "Traceback" not in res.stderr


def test_empty_file(tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    res = run_cli("annotate", tmp_path / "empty.csv", "-o", tmp_path / "o.parquet", "--tasks", "none")
    assert res.returncode == 2 and "empty.csv is empty (0 bytes)" in res.stderr


def test_unreadable_parquet(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet at all")
    res = run_cli("annotate", bad, "-o", tmp_path / "o.parquet", "--tasks", "none")
    assert res.returncode == 2 and "bad.parquet cannot be read as parquet" in res.stderr
    assert "Traceback" not in res.stderr


def test_missing_input_and_unknown_task(tmp_path, reports_parquet):
    res = run_cli("annotate", tmp_path / "nope.parquet", "-o", tmp_path / "o.parquet")
    assert res.returncode == 2 and "input file not found" in res.stderr
    res = run_cli("annotate", reports_parquet, "-o", tmp_path / "o.parquet", "--tasks", "radz")
    assert res.returncode == 2
    assert "Unknown task 'radz'. Known: " in res.stderr and "rads_assignment" in res.stderr


def test_unknown_model_lists_known(reports_parquet, tmp_path):
    res = run_cli("annotate", reports_parquet, "-o", tmp_path / "o.parquet", "--model", "qwen9")
    assert res.returncode == 2 and "Unknown model 'qwen9'. Known: smollm2" in res.stderr


def test_csv_rows_with_nulls_bad_bytes_duplicates_and_newlines(tmp_path):
    """Every row comes back with a status; CSV quoting with embedded newlines and quotes survives."""
    csv = tmp_path / "export.csv"
    lines = [b"report_id,report_text", b'1,"FINDINGS: clear lungs.\nIMPRESSION: ""normal"""', b"2,",
             b"2,FINDINGS: caf\xe9 au lait\xff text", b'3,"Line one\r\nline two"']
    csv.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "o.parquet"
    res = run_cli("annotate", csv, "-o", out, "--tasks", "none", "-q")
    assert res.returncode == 0, res.stderr
    df = pl.read_parquet(out)
    assert df["source_row"].to_list() == [0, 1, 2, 3]
    assert df["status"].to_list() == ["ok", "empty_text", "bad_text", "ok"]
    assert df["report_text"][0] == 'FINDINGS: clear lungs.\nIMPRESSION: "normal"'
    assert df["id_duplicated"].to_list() == [False, True, True, False]


def test_encoding_option_reads_cp1252(tmp_path):
    csv = tmp_path / "win.csv"
    csv.write_bytes("report_id,report_text\n1,FINDINGS: café – normal\n".encode("cp1252"))
    res = run_cli("annotate", csv, "-o", tmp_path / "o.parquet", "--tasks", "none", "--encoding", "cp1252", "-q")
    assert res.returncode == 0, res.stderr
    assert pl.read_parquet(tmp_path / "o.parquet")["report_text"][0] == "FINDINGS: café – normal"


def test_directory_and_glob_inputs_and_dataset_output(tmp_path):
    d = tmp_path / "archive"
    d.mkdir()
    write_reports(d / "a.parquet", n=3)
    write_reports(d / "b.csv", n=2, fmt="csv")
    out = tmp_path / "out"
    res = run_cli("annotate", d, "-o", f"{out}/", "--tasks", "none", "-q")
    assert res.returncode == 0, res.stderr
    files = sorted(p.name for p in out.glob("*.parquet"))
    assert files == ["00000-a.parquet", "00001-b.parquet"]
    res = run_cli("annotate", str(d / "*.parquet"), "-o", tmp_path / "g.parquet", "--tasks", "none", "-q")
    assert res.returncode == 0 and pq.read_table(tmp_path / "g.parquet").num_rows == 3


def test_limit_runs_a_pilot(tmp_path):
    src = write_reports(tmp_path / "in.parquet", n=30)
    res = run_cli("annotate", src, "-o", tmp_path / "o.parquet", "--tasks", "none", "--limit", "11", "-q")
    assert res.returncode == 0
    assert pq.read_table(tmp_path / "o.parquet").column("source_row").to_pylist() == list(range(11))


def test_non_text_column_and_keep_columns(tmp_path):
    pq.write_table(pa.table({"report_id": [1, 2], "report_text": ["a", "b"], "extra": [1.0, 2.0]}),
                   tmp_path / "i.parquet")
    res = run_cli("annotate", tmp_path / "i.parquet", "-o", tmp_path / "o.parquet", "--tasks", "none",
                  "--keep-columns", "report_id", "-q")
    assert res.returncode == 0, res.stderr
    assert pq.read_schema(tmp_path / "o.parquet").names[:2] == ["report_id", "source_file"]


def test_missing_model_and_non_gguf_exit_3(tmp_path, reports_parquet):
    res = run_cli("annotate", reports_parquet, "-o", tmp_path / "o.parquet", "--model", tmp_path / "none.gguf")
    assert res.returncode == 3 and "file not found" in res.stderr
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a model" * 100)
    res = run_cli("annotate", reports_parquet, "-o", tmp_path / "o.parquet", "--model", fake)
    assert res.returncode == 3 and "is not a GGUF file" in res.stderr
