"""What a labelled archive covers, per head, as a Markdown table (docs/sample-data.md is made with it).

    python -m radbatch.sample.coverage sample_data/reports.parquet
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

from radbatch.sample.schema import CHEXPERT


def _counts(values) -> str:
    counts = collections.Counter(v for v in values if v is not None)
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))))


def describe(rows: list[dict]) -> str:
    """Markdown: rows with gold per head and the distribution of gold values."""

    def col(name: str) -> list:
        return [r.get(name) for r in rows]

    changes = [c for cs in col("gold__temporal_comparison__changes") if cs for c in cs]
    entities = [e for es in col("gold__radiology_ner__entities") if es for e in es]
    answers = col("gold__radiology_qa__answer")
    chest = [r for r in rows if r["report_type"] == "chest_xr"]
    lines = [
        "| head | rows with gold | gold values |",
        "|---|---|---|",
        f"| rads_assignment | {sum(v is not None for v in col('gold__rads_assignment__system'))} | "
        f"{_counts(col('gold__rads_assignment__system'))} |",
        f"| impression_generation | {sum(v is not None for v in col('gold__impression_generation__text'))} | "
        "reference impression text |",
        f"| temporal_comparison | {sum(bool(v) for v in col('gold__temporal_comparison__changes'))} | "
        f"{len(changes)} changes: {_counts(c['change'] for c in changes)} |",
        f"| radiology_ner | {sum(bool(v) for v in col('gold__radiology_ner__entities'))} | "
        f"{len(entities)} entities: {_counts(e['label'] for e in entities)} |",
        f"| n_staging | {sum(v is not None for v in col('gold__n_staging__stage'))} | {_counts(col('gold__n_staging__stage'))} |",
        f"| m_staging | {sum(v is not None for v in col('gold__m_staging__stage'))} | {_counts(col('gold__m_staging__stage'))} |",
        f"| radiology_nli | {sum(v is not None for v in col('gold__radiology_nli__label'))} | "
        f"{_counts(col('gold__radiology_nli__label'))} |",
        f"| abnormality_detection | {len(chest)} | see the table below |",
        f"| radiology_qa | {sum(v is not None for v in answers)} | "
        f"yes/no {sum(a in ('Yes', 'No') for a in answers)}, extractive {sum(a not in (None, 'Yes', 'No') for a in answers)} |",
        "",
        "| CheXpert label | positive | negative | uncertain | not mentioned |",
        "|---|---|---|---|---|",
    ]
    for slug in CHEXPERT:
        values = collections.Counter(r[f"gold__abnormality_detection__{slug}"] for r in chest)
        lines.append(f"| {slug} | {values['positive']} | {values['negative']} | {values['uncertain']} | {values[None]} |")
    lines += ["", f"Report types: {_counts(col('report_type'))}.", f"Splits: {_counts(col('split'))}."]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    import pyarrow.parquet as pq

    if len(argv) != 1:
        sys.exit("usage: python -m radbatch.sample.coverage ARCHIVE.parquet")
    print(describe(pq.read_table(Path(argv[0])).to_pylist()))


if __name__ == "__main__":
    main(sys.argv[1:])
