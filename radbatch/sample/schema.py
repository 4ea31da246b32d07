"""Columns of a sample archive and their Arrow types.

Gold columns are `gold__<task>__<field>` with exactly the name and type that `radbatch annotate` gives
`<task>__<field>` (recipes/tasks/*.toml [[columns]]); tests/test_sample_schema.py holds the two together.
"""

from __future__ import annotations

from operator import itemgetter

import numpy as np
import pyarrow as pa

from radbatch.sample.cohort import accessions, report_ids

CHEXPERT = (
    "atelectasis", "cardiomegaly", "consolidation", "edema", "enlarged_cardiomediastinum", "fracture",
    "lung_lesion", "lung_opacity", "no_finding", "pleural_effusion", "pleural_other", "pneumonia",
    "pneumothorax", "support_devices",
)  # fmt: skip

CHANGES = pa.list_(pa.struct([("change", pa.string()), ("cue", pa.string()), ("entity", pa.string())]))
ENTITIES = pa.list_(pa.struct([("text", pa.string()), ("label", pa.string())]))

BASE = pa.schema(
    [
        ("report_id", pa.string()),
        ("accession", pa.string()),
        ("patient_id", pa.string()),
        ("study_date", pa.date32()),
        ("modality", pa.string()),
        ("report_type", pa.string()),
        ("report_text", pa.string()),
        ("question", pa.string()),
        ("hypothesis", pa.string()),
        ("split", pa.string()),
    ]
)
GOLD = pa.schema(
    [
        ("gold__rads_assignment__system", pa.string()),
        ("gold__rads_assignment__category", pa.string()),
        ("gold__impression_generation__text", pa.string()),
        ("gold__temporal_comparison__changes", CHANGES),
        ("gold__radiology_ner__entities", ENTITIES),
        ("gold__n_staging__node_involvement", pa.string()),
        ("gold__n_staging__stage", pa.string()),
        ("gold__m_staging__stage", pa.string()),
        ("gold__radiology_nli__label", pa.string()),
        *[(f"gold__abnormality_detection__{slug}", pa.string()) for slug in CHEXPERT],
        ("gold__radiology_qa__answer", pa.string()),
    ]
)
GOLD_NAMES = tuple(GOLD.names)
# columns whose values are lists: CSV has no list type, so CSV output holds them as JSON text
NESTED = ("gold__temporal_comparison__changes", "gold__radiology_ner__entities")


def schema(gold: bool) -> pa.Schema:
    return pa.schema(list(BASE) + (list(GOLD) if gold else []))


def to_batch(rows: list[dict], gold: bool, key: int) -> pa.RecordBatch:
    """Row dicts (as reports.py builds them) to one record batch of `schema(gold)`.

    Rows hold the study number n (cohort.report_ids) under report_id; both ids are printed here, for
    all rows at once, from n, the study date and the seed key."""
    target = schema(gold)
    if not rows:
        return pa.RecordBatch.from_pylist([], schema=target)
    # itemgetter + zip transpose the rows in C; a list comprehension per column is several times slower
    columns = dict(zip(target.names, zip(*map(itemgetter(*target.names), rows))))
    n = np.array(columns["report_id"], np.int64)
    days = np.array(columns["study_date"], np.int32)
    arrays = []
    for f in target:
        if f.name == "report_id":
            arrays.append(report_ids(key, n))
        elif f.name == "accession":
            arrays.append(accessions(key, n, days))
        elif f.name == "study_date":
            arrays.append(pa.array(days).view(pa.date32()))
        else:
            arrays.append(pa.array(columns[f.name], f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=target)
