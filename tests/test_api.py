"""The Python API (radbatch.annotate / radbatch.eval) and the README's examples, run as written."""

from __future__ import annotations

import re
import subprocess
import sys

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import radbatch
from radbatch.errors import InputError

from conftest import REPO, REPORTS, write_reports


def _readme_block(heading: str) -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, f"no python example under '## {heading}'"
    return "\n".join(blocks)


def test_readme_python_api_and_duckdb_examples_run_as_written(tmp_path):
    script = _readme_block("Python API") + "\n" + _readme_block("Querying the output with DuckDB")
    (tmp_path / "example.py").write_text(script)
    proc = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = pl.read_parquet(tmp_path / "annotated.parquet")
    assert out["report_id"].to_list() == ["A1", "A2"]
    assert set(out["m_staging__stage"].to_list()) <= {"M0", "M1", None}
    assert out.schema["radiology_ner__entities"] == pl.List(pl.Struct({"text": pl.String, "label": pl.String}))
    assert "stage/accuracy" in proc.stdout            # the eval example printed the primary metric
    assert "entity" in proc.stdout and "m_staging__stage" in proc.stdout   # the DuckDB queries printed


@pytest.mark.parametrize("kind", ["polars", "pandas", "arrow", "lazy"])
def test_in_memory_sources_give_the_same_rows_as_the_file_and_a_second_call_resumes(tmp_path, kind):
    table = pa.table({"report_id": [f"R{i}" for i in range(3)], "report_text": REPORTS[:3]})
    source = {"polars": lambda: pl.from_arrow(table), "pandas": table.to_pandas, "arrow": lambda: table,
              "lazy": lambda: pl.from_arrow(table).lazy()}[kind]()
    summaries = []
    out = radbatch.annotate(source, tmp_path / "out.parquet", tasks="m_staging", workers=1, threads=2,
                            on_summary=summaries.append)
    assert isinstance(out, pl.LazyFrame)
    got = out.collect()
    assert got["report_id"].to_list() == ["R0", "R1", "R2"] and got["status"].to_list() == ["ok"] * 3
    staged = list((tmp_path / "out.parquet.input").iterdir())
    assert len(staged) == 1 and staged[0].stat().st_mode & 0o077 == 0       # owner-only: it holds report text
    assert got["source_file"].unique().to_list() == [str(staged[0])]
    radbatch.annotate(source, tmp_path / "out.parquet", tasks="m_staging", on_summary=summaries.append)
    assert summaries[1].nothing_to_do                                         # same frame, same run: resumed


def test_api_and_cli_write_the_same_table(tmp_path):
    src = write_reports(tmp_path / "reports.parquet", n=3)
    radbatch.annotate(str(src), str(tmp_path / "api.parquet"), tasks="m_staging", workers=1)
    from conftest import run_cli
    proc = run_cli("annotate", src, "-o", tmp_path / "cli.parquet", "--tasks", "m_staging", "--workers", "1", "-q")
    assert proc.returncode == 0, proc.stderr
    assert pq.read_table(tmp_path / "api.parquet").equals(pq.read_table(tmp_path / "cli.parquet"))


def test_unknown_options_and_sources_are_refused_with_the_known_names(tmp_path):
    with pytest.raises(InputError, match=r"unknown option\(s\) text_colum.*known: .*text_column"):
        radbatch.annotate(str(tmp_path / "x.parquet"), text_colum="body")
    with pytest.raises(InputError, match="cannot annotate a builtins.dict"):
        radbatch.annotate({"report_text": ["x"]}, tmp_path / "o.parquet")


def test_import_radbatch_stays_light():
    code = ("import sys, radbatch; heavy = {'polars', 'llama_cpp', 'torch', 'pyarrow'} & set(sys.modules); "
            "assert not heavy, heavy; assert callable(radbatch.annotate) and callable(radbatch.eval)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
