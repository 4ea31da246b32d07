"""The fast paths of `radbatch sample` write exactly what the plain code would.

Speed comes from a reused, reseeded generator per process, ids printed for a whole block with numpy, a
bounded sentence cache, and blocks of patients spread over worker processes. None of it may show in
the output: the same seed gives the same bytes whatever the worker count or block size.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radbatch.sample import archive, layout
from radbatch.sample.archive import SampleOptions, sample_table, write_archive
from radbatch.sample.cohort import (
    MAX_STUDIES,
    accession,
    accessions,
    patient_rng,
    report_id,
    report_ids,
    reseeded_rng,
    seed_key,
)

U64 = st.integers(0, 2**64 - 1)


@settings(max_examples=60, deadline=None)
@given(
    seed=U64,
    studies=st.lists(
        st.tuples(st.integers(0, 2**34), st.integers(0, MAX_STUDIES - 1), st.integers(10_000, 25_000)), min_size=1, max_size=20
    ),
)
def test_block_ids_are_the_reference_ids(seed, studies):
    key = seed_key(seed)
    n = np.array([index * MAX_STUDIES + number for index, number, _ in studies], np.int64)
    days = np.array([day for _, _, day in studies], np.int32)
    assert report_ids(key, n).to_pylist() == [report_id(key, i, k) for i, k, _ in studies]
    assert accessions(key, n, days).to_pylist() == [accession(key, i, k, d) for i, k, d in studies]


@settings(max_examples=30, deadline=None)
@given(seed=U64, index=st.integers(0, 2**40 - 1))
def test_reseeded_generator_gives_the_patient_stream(seed, index):
    key = seed_key(seed)
    expected = patient_rng(key, index)
    reseeded_rng(key, index + 1).random()  # whatever the shared generator did before
    got = reseeded_rng(key, index)
    assert [got.random() for _ in range(50)] == [expected.random() for _ in range(50)]
    assert got.getrandbits(64) == expected.getrandbits(64)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("suffix,gold,messy", [("parquet", False, False), ("csv", True, True), ("parquet", True, True)])
def test_same_bytes_whatever_the_workers_and_block_size(tmp_path, monkeypatch, suffix, gold, messy):
    monkeypatch.setattr(archive, "ROW_GROUP", 300)  # several row groups, each cut across blocks
    runs = {}
    for workers, block in [(1, 256), (2, 256), (3, 256), (2, 7), (1, 40)]:
        monkeypatch.setattr(archive, "BLOCK_PATIENTS", block)
        out = tmp_path / f"w{workers}b{block}.{suffix}"
        write_archive(SampleOptions(rows=1300, output=out, seed=11, gold=gold, messy=messy, workers=workers))
        runs[workers, block] = digest(out)
    assert len(set(runs.values())) == 1, runs


def test_sentence_cache_size_does_not_change_the_text(monkeypatch):
    reference = sample_table(400, seed=5)
    monkeypatch.setattr(layout, "_SENTENCES_MAX", 3)
    layout._SENTENCES.clear()
    try:
        assert sample_table(400, seed=5).equals(reference)
    finally:
        layout._SENTENCES.clear()


def test_split_archive_keeps_its_ids_and_types():
    table = sample_table(300, seed=4, split="test", gold=False)
    assert table.schema.field("report_id").type == pa.string() and table.column("report_id").null_count == 0
    full = sample_table(3000, seed=4, gold=False).to_pylist()
    by_id = {r["report_id"]: r for r in full}
    rows = table.to_pylist()
    assert rows and all(r["split"] == "test" for r in rows)
    assert all(by_id[r["report_id"]] == r for r in rows if r["report_id"] in by_id)
