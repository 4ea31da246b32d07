"""The committed sample archive (sample_data/): reproducible, Parquet and CSV agree, and the first 25
rows (what `make demo` annotates) exercise all nine heads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from radbatch.sample.archive import SampleOptions, write_archive

DATA = Path(__file__).resolve().parents[1] / "sample_data"
PARQUET, CSV, README = DATA / "reports.parquet", DATA / "reports.csv", DATA / "README.md"
CHEXPERT = (
    "atelectasis", "cardiomegaly", "consolidation", "edema", "enlarged_cardiomediastinum", "fracture", "lung_lesion",
    "lung_opacity", "pleural_effusion", "pleural_other", "pneumonia", "pneumothorax", "support_devices",
)  # fmt: skip


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return pq.read_table(PARQUET).to_pylist()


def documented_command(suffix: str) -> tuple[int, int]:
    """(rows, seed) from the README's command for reports.<suffix>."""
    m = re.search(rf"radbatch sample -n (\d+) --seed (\d+) -o sample_data/reports\.{suffix}\b", README.read_text())
    assert m, f"README.md gives no command for reports.{suffix}"
    return int(m.group(1)), int(m.group(2))


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_committed_files_are_what_the_readme_command_writes(tmp_path, suffix):
    n, seed = documented_command(suffix)
    out = tmp_path / f"reports.{suffix}"
    write_archive(SampleOptions(rows=n, output=out, seed=seed))
    assert out.read_bytes() == (DATA / f"reports.{suffix}").read_bytes(), "regenerate sample_data/ (see its README)"


def test_csv_holds_the_same_rows(rows):
    names = pq.read_schema(PARQUET).names
    types = {n: pa.date32() if n == "study_date" else pa.string() for n in names}
    csv = pacsv.read_csv(
        CSV,
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False),
    ).to_pylist()
    assert len(csv) == len(rows) >= 250
    for p, c in zip(rows, csv):
        for k in ("gold__temporal_comparison__changes", "gold__radiology_ner__entities"):
            c[k] = json.loads(c[k]) if c[k] is not None else None
        assert c == p


def test_sample_is_clean_and_moderate(rows):
    assert {r["split"] for r in rows} == {"train", "dev", "test"}
    lengths = sorted(len(r["report_text"]) for r in rows)
    assert all(lengths) and lengths[len(lengths) // 2] <= 800 and lengths[-1] <= 1600
    assert len({r["report_id"] for r in rows}) == len(rows)
    assert {r["gold__rads_assignment__system"] for r in rows} - {None, "none"} == {
        "BI-RADS", "TI-RADS", "LI-RADS", "PI-RADS", "O-RADS", "VI-RADS", "CAD-RADS", "NI-RADS", "Lung-RADS", "GB-RADS"
    }  # fmt: skip


def test_first_25_rows_exercise_every_head(rows):
    head = rows[:25]
    chest = [r for r in head if r["report_type"] == "chest_xr"]
    assert any(sum(r[f"gold__abnormality_detection__{k}"] is not None for k in CHEXPERT) >= 3 for r in chest)
    assert len({r["gold__rads_assignment__system"] for r in head} - {None, "none"}) >= 3
    assert any(
        r["gold__n_staging__node_involvement"] == "positive" and r["gold__m_staging__stage"] == "M1" for r in head
    ), "an oncologic CT with positive nodes and M1"
    follow_ups = [i for i, r in enumerate(head) if r["gold__temporal_comparison__changes"]]
    assert follow_ups
    i = follow_ups[0]
    assert any(r["patient_id"] == head[i]["patient_id"] and r["modality"] == head[i]["modality"] for r in head[:i])
    assert {r["gold__radiology_nli__label"] for r in head} == {"entailment", "contradiction", "neutral"}
    assert all(r["question"] and r["gold__radiology_qa__answer"] for r in head)
    assert sum(r["gold__impression_generation__text"] is not None for r in head) >= 15
    assert all(r["gold__radiology_ner__entities"] for r in head)
