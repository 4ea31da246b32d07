"""Finalize merges finished parts unit by unit into row order, with the parts' declared types."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from radbatch.archive.reading import InputFile
from radbatch.errors import StorageError
from radbatch.annotation.finalize import finalize
from radbatch.annotation.output import RunStore, read_provenance


def _unit(file_index: int, start: int, n: int, ids: list[str], extra: str | None = None) -> pa.Table:
    cols = {"report_id": pa.array(ids, pa.string()),
            "_source_index": pa.array([file_index] * n, pa.int32()),
            "source_file": pa.array([f"f{file_index}.parquet"] * n, pa.string()),
            "source_row": pa.array(range(start, start + n), pa.int64()),
            "m_staging__stage": pa.array(["M0"] * n, pa.string())}
    if extra:
        cols[extra] = pa.array([1] * n, pa.int16())
    return pa.table(cols)


def _files(*rows: int) -> list[InputFile]:
    return [InputFile(i, f"f{i}.parquet", "parquet", (), n, 0, 0) for i, n in enumerate(rows)]


def _store(tmp_path) -> RunStore:
    store = RunStore(str(tmp_path / "out.parquet"))
    store.begin("key", {}, restart=False)
    return store


def test_parts_in_any_order_come_out_sorted_with_declared_types_and_duplicate_ids_flagged(tmp_path):
    store = _store(tmp_path)
    # file 0 has 20 rows in units 0, 8, 16; workers finished them out of order, two units in one part
    store.write_part(0, pa.concat_tables([_unit(0, 16, 4, ["a"] * 4), _unit(0, 0, 8, list("bcdefghi"))]),
                     ["0:16", "0:0"])
    store.write_part(0, _unit(0, 8, 8, list("jklmnopq")), ["0:8"])
    # file 1 has a column file 0 lacks, and repeats id "b"
    store.write_part(1, _unit(1, 0, 3, ["b", "x", "y"], extra="score"), ["1:0"])
    [out] = finalize(store, _files(20, 3), {"run_key": "key"}, "report_id", 23)
    table = pq.read_table(out)
    assert table.column("source_file").to_pylist() == ["f0.parquet"] * 20 + ["f1.parquet"] * 3
    assert table.column("source_row").to_pylist() == list(range(20)) + [0, 1, 2]
    assert table.schema.field("m_staging__stage").type == pa.string()        # not widened to large_string
    assert table.schema.field("score").type == pa.int16()
    assert table.column("score").to_pylist() == [None] * 20 + [1, 1, 1]
    assert "_source_index" not in table.column_names
    flagged = [(f, r) for f, r, d in zip(table.column("source_file").to_pylist(),
                                          table.column("source_row").to_pylist(),
                                          table.column("id_duplicated").to_pylist()) if d]
    assert flagged == [("f0.parquet", 0)] + [("f0.parquet", r) for r in range(16, 20)] + [("f1.parquet", 0)]
    assert read_provenance(out) == {"run_key": "key"}


def test_a_missing_unit_fails_the_output_check_and_leaves_no_final_file(tmp_path):
    store = _store(tmp_path)
    store.write_part(0, _unit(0, 0, 8, list("abcdefgh")), ["0:0"])
    store.write_part(0, _unit(0, 16, 2, ["i", "j"]), ["0:16"])
    with pytest.raises(StorageError, match="10 rows written, 18 expected"):
        finalize(store, _files(18), {"run_key": "key"}, "report_id", 18)
    assert not (tmp_path / "out.parquet").exists()
    assert [p.name for p in (tmp_path / "out.parquet.radbatch" / "parts").iterdir()
            if p.name.startswith(".")] == []            # no temporary file left; the parts stay for a rerun


def test_dataset_directory_output_has_one_file_per_input(tmp_path):
    store = RunStore(str(tmp_path / "out") + "/")
    store.begin("key", {}, restart=False)
    store.write_part(1, _unit(1, 0, 2, ["a", "b"]), ["1:0"])
    store.write_part(0, _unit(0, 0, 3, ["c", "a", "d"]), ["0:0"])
    paths = finalize(store, _files(3, 2), {"run_key": "key"}, "report_id", 5)
    assert [p.name for p in paths] == ["00000-f0.parquet", "00001-f1.parquet"]
    assert pq.read_table(paths[0]).column("id_duplicated").to_pylist() == [False, True, False]
    assert pq.read_table(paths[1]).column("id_duplicated").to_pylist() == [True, False]
