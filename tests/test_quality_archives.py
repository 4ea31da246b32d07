"""The committed quality archives (sample_data/quality_{test,dev}.parquet): what their command writes, byte for
byte; 60 gold rows per head with every temporal row's prior present (by annotate's own pairing); the
generator's class proportions, not rebalanced ones.
"""

from __future__ import annotations

import collections
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from radbatch.archive.reading import ColumnOptions, inspect
from radbatch.evaluation import quality_archives as qa
from radbatch.archive.priors import build_priors
from radbatch.sample.archive import SampleOptions, sample_table, write_archive
from radbatch.sample.schema import CHEXPERT

MANIFEST = qa.load_manifest()


def committed(name: str) -> pa.Table:
    return pq.read_table(qa.SAMPLE_DATA / MANIFEST[name]["file"])


def test_committed_archives_are_what_the_command_writes(tmp_path):
    made = qa.build(tmp_path)
    assert made == MANIFEST
    for m in made.values():
        assert qa.sha256(qa.SAMPLE_DATA / m["file"]) == m["sha256"] == qa.sha256(tmp_path / m["file"])
    # the test archive is a plain `radbatch sample` draw: same bytes from the sample writer itself
    test = MANIFEST["test"]
    assert test["top_up"] is None and test["rows"] == test["plain_rows"] >= 400
    plain = tmp_path / "plain.parquet"
    write_archive(SampleOptions(rows=test["rows"], output=plain, seed=test["seed"], split="test"))
    assert qa.sha256(plain) == test["sha256"]


def test_dev_archive_is_a_plain_draw_then_whole_patients_with_a_follow_up():
    dev, m = committed("dev"), MANIFEST["dev"]
    assert m["plain_rows"] >= 200 and m["rows"] == dev.num_rows > m["plain_rows"]
    assert dev.slice(0, m["plain_rows"]).equals(sample_table(m["plain_rows"], seed=m["seed"], split="dev"))
    extra = dev.slice(m["plain_rows"])
    temporal = qa.gold_rows(extra)["temporal_comparison"]
    patients = extra.column("patient_id").to_pylist()
    with_pair = {p for p, t in zip(patients, temporal) if t}
    assert set(patients) == with_pair                     # only patients with a follow-up pair were added
    assert not set(patients) & set(dev.column("patient_id").to_pylist()[: m["plain_rows"]])
    # without the top-up the plain draw would lack temporal rows, and would have them at 631 reports
    assert qa.gold_counts(dev.slice(0, m["plain_rows"]))["temporal_comparison"] < qa.MIN_GOLD


@pytest.mark.parametrize("name", ["test", "dev"])
def test_every_head_has_60_gold_rows_and_temporal_priors_are_in_the_archive(name, tmp_path):
    table = committed(name)
    assert table.column("split").unique().to_pylist() == [MANIFEST[name]["split"]]
    counts = qa.gold_counts(table)
    assert counts == MANIFEST[name]["gold_rows"] and min(counts.values()) >= qa.MIN_GOLD
    # annotate's own prior pairing (radbatch/archive/priors.py) over the committed file
    path = qa.SAMPLE_DATA / MANIFEST[name]["file"]
    cols = ColumnOptions(patient="patient_id", date="study_date", modality="modality")
    paired = set(pq.read_table(build_priors([inspect(0, path, "utf-8")], cols, "utf-8", tmp_path, None),
                               columns=["row"]).column("row").to_pylist())
    assert {i for i, p in enumerate(qa.has_prior(table)) if p} == paired
    labelled = qa.labelled(table, "temporal_comparison")
    assert sum(labelled) == counts["temporal_comparison"]   # no follow-up lacks its prior
    assert all(i in paired for i, g in enumerate(labelled) if g)


def shares(table: pa.Table) -> dict[tuple[str, str], tuple[int, int]]:
    """(what, value) -> (count, out of): report families and each closed-label head's gold classes."""
    out = {}

    def add(what: str, values: list) -> None:
        values = [v for v in values if v is not None]
        for value, count in collections.Counter(values).items():
            out[(what, str(value))] = (count, len(values))

    add("report_type", table.column("report_type").to_pylist())
    for column in ("gold__rads_assignment__system", "gold__n_staging__stage", "gold__m_staging__stage",
                   "gold__radiology_nli__label"):
        add(column, table.column(column).to_pylist())
    answers = table.column("gold__radiology_qa__answer").to_pylist()
    add("qa yes/no", [None if a is None else a in ("Yes", "No") for a in answers])
    chest = table.filter(pa.compute.equal(table.column("report_type"), "chest_xr"))
    for slug in CHEXPERT:
        add(slug, [v or "not_mentioned" for v in chest.column(f"gold__abnormality_detection__{slug}").to_pylist()])
    return out


@pytest.fixture(scope="module")
def large_draw():
    return shares(sample_table(12_000, seed=0))   # another seed, every split: the generator's proportions


def off_proportion(table: pa.Table, reference: dict) -> list[str]:
    """Classes whose share in `table` is more than 4 standard errors (+ 0.01) from the large draw's."""
    bad = []
    for key, (count, n) in shares(table).items():
        ref_count, ref_n = reference.get(key, (0, 1))
        q = ref_count / ref_n
        if abs(count / n - q) > 4 * math.sqrt(max(q * (1 - q), 1e-4) / n) + 0.01:
            bad.append(f"{key}: {count}/{n} vs {q:.3f}")
    return bad


def test_test_archive_keeps_the_generators_class_proportions(large_draw):
    assert off_proportion(committed("test"), large_draw) == []


def test_dev_plain_draw_keeps_the_generators_class_proportions(large_draw):
    m = MANIFEST["dev"]
    assert off_proportion(committed("dev").slice(0, m["plain_rows"]), large_draw) == []


def test_the_proportion_check_catches_a_rebalanced_archive(large_draw):
    # what rebalancing would look like: the oncologic CT reports doubled to lift N and M staging
    test = committed("test")
    onc = test.filter(pa.compute.equal(test.column("report_type"), "onc_ct"))
    bad = off_proportion(pa.concat_tables([test, onc]), large_draw)
    assert any(b.startswith("('report_type', 'onc_ct')") for b in bad)
