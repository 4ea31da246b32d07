"""The temporal head's prior report: the previous report of the same patient and modality, by date."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from radbatch.archive import ColumnOptions, inspect
from radbatch.priors import build_priors, priors_for

COLS = ColumnOptions(patient="patient_id", date="study_date", modality="modality")


def _write(tmp: Path, name: str, rows: list[tuple]) -> Path:
    ids, patients, dates, modalities = zip(*rows)
    table = pa.table({"report_id": list(ids), "report_text": [f"text of {i}" for i in ids],
                      "patient_id": list(patients), "study_date": list(dates), "modality": list(modalities)})
    path = tmp / name
    if name.endswith(".csv"):
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


def _priors(tmp: Path, paths: list[Path], limit: int | None = None) -> dict[tuple[int, int], str]:
    files = [inspect(i, p, "utf-8") for i, p in enumerate(paths)]
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    out = build_priors(files, COLS, "utf-8", work, limit)
    return {(f.index, row): text for f in files for row, text in priors_for(out, f.index).items()}


def test_prior_is_the_previous_report_of_the_same_patient_and_modality_by_date(tmp_path):
    # file 0 lists reports out of date order; patient P2 has CT and MR series; one date is unparseable
    a = _write(tmp_path, "a.parquet", [
        ("r0", "P1", "2021-03-01", "CR"),
        ("r1", "P1", "2020-01-15", "CR"),
        ("r2", "P2", "2022-06-01", "CT"),
        ("r3", "P2", "2022-07-01", "MR"),
        ("r4", None, "2022-07-01", "MR"),      # no patient: no prior, no one's prior
        ("r5", "P1", "not a date", "CR"),      # unparseable date: no prior, no one's prior
    ])
    b = _write(tmp_path, "b.csv", [
        ("s0", "P2", "2023-01-01", "CT"),
        ("s1", "P1", "2021-03-01", "CR"),      # same date as r0: ties are broken by row identity
        ("s2", "P3", "2023-01-01", "CT"),
    ])
    priors = _priors(tmp_path, [a, b])
    assert priors == {
        (0, 0): "text of r1",   # 2021-03-01 follows 2020-01-15
        (1, 0): "text of r2",   # P2 CT 2023 follows P2 CT 2022 in the other file, not P2's MR
        (1, 1): "text of r0",   # same date, later row identity
    }


def test_limit_keeps_later_rows_out_of_the_priors(tmp_path):
    a = _write(tmp_path, "a.parquet", [
        ("r0", "P1", "2021-01-01", "CR"),
        ("r1", "P1", "2022-01-01", "CR"),
        ("r2", "P1", "2020-01-01", "CR"),      # beyond --limit 2: must not become r0's prior
    ])
    assert _priors(tmp_path, [a], limit=2) == {(0, 1): "text of r0"}
