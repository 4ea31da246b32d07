"""Columns of a sample archive and their Arrow types.

Gold columns are `gold__<task>__<field>` with exactly the name, type and order that `radbatch annotate` gives
`<task>__<field>`: they are read from the task registry (radbatch/heads/recipes.py), for the heads this generator
writes gold for (LABELLED: reports.py fills their values); tests/test_sample_schema.py holds the two together.
"""

from __future__ import annotations

from operator import itemgetter

import numpy as np
import pyarrow as pa

from radbatch.heads.recipes import load_recipes
from radbatch.sample.cohort import accessions, report_ids

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
# The heads reports.py writes gold for. A head added to recipes/tasks/ gets no gold here until the generator
# learns to label it (an all-null gold column would count as labelled by nobody, not as a head with gold).
LABELLED = (
    "rads_assignment", "impression_generation", "temporal_comparison", "radiology_ner", "n_staging",
    "m_staging", "radiology_nli", "abnormality_detection", "radiology_qa",
)


def _registry() -> dict:
    from radbatch.errors import RecipeError
    recipes = load_recipes()
    missing = [t for t in LABELLED if t not in recipes.tasks]
    if missing:
        raise RecipeError([f"{recipes.root / 'tasks'}: no recipe for {', '.join(missing)}, which the sample "
                           "generator (radbatch/sample) writes gold for"])
    return recipes.tasks


def gold_schema(tasks: dict) -> pa.Schema:
    """gold__<task>__<field> for the LABELLED heads, in registry order, with the recipes' Arrow types."""
    return pa.schema([(f"gold__{t}__{name}", dtype) for t in tasks if t in LABELLED
                      for name, dtype in tasks[t].columns])


_TASKS = _registry()
GOLD = gold_schema(_TASKS)
GOLD_NAMES = tuple(GOLD.names)
CHEXPERT = _TASKS["abnormality_detection"].fields   # the 14 label columns, in recipe order
# columns whose values are lists: CSV has no list type, so CSV output holds them as JSON text
NESTED = tuple(f.name for f in GOLD if pa.types.is_list(f.type))


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
