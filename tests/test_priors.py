"""The temporal head's prior report: the previous report of the same patient and modality, by date."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from radbatch.archive.reading import ColumnOptions, inspect
from radbatch.archive.priors import PriorCursor, build_priors, priors_for

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


def test_the_cursor_hands_each_unit_its_priors_in_one_forward_pass(tmp_path):
    rows = [(f"r{i}", f"P{i % 7}", f"2020-01-{1 + i // 7:02d}", "CT") for i in range(60)]
    paths = [_write(tmp_path, "a.parquet", rows[:33]), _write(tmp_path, "b.parquet", rows[33:])]
    files = [inspect(i, p, "utf-8") for i, p in enumerate(paths)]
    (tmp_path / "work").mkdir()
    out = build_priors(files, COLS, "utf-8", tmp_path / "work", None)
    cursor = PriorCursor(out, batch_rows=5)          # batches smaller than units and not aligned with them
    got = {}
    for f in files:
        for start in range(0, f.rows, 8):
            if start == 16:
                continue                             # a unit finished before a resume is never asked for
            got.update({(f.index, r): t for r, t in cursor.take(f.index, start, min(8, f.rows - start)).items()})
    want = {(f.index, r): t for f in files for r, t in priors_for(out, f.index).items()
            if not (f.index in (0, 1) and 16 <= r < 24)}
    assert got == want and len(want) == 60 - 7 - 16     # 7 first reports, 2 skipped units
