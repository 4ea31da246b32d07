"""A small synthetic labelled archive, for the docs example and the tests (no real report text).

    python -m radbatch.evaluation.synthetic DIR [--rows N] [--seed S]

writes DIR/gold.parquet (ids + gold__* columns for all nine heads), DIR/run_a.parquet (a weaker run: about
55% of answers right, some errors and truncations) and DIR/run_b.parquet (a stronger one: about 90% right),
shaped like `radbatch annotate` output. Everything is drawn from a seeded random.Random, so reruns are
identical.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .task_specs import load_specs, task_ids

ENTITIES = [("pleural effusion", "OBS-DP"), ("left lower lobe", "ANAT-DP"), ("pneumothorax", "OBS-DA"),
            ("atelectasis", "OBS-U"), ("heart", "ANAT-DP"), ("consolidation", "OBS-DP"), ("right hilum", "ANAT-DP")]
FINDINGS = ["pleural effusion", "pulmonary nodule", "basal opacity", "cardiomegaly", "hepatic lesion"]
CUES = {"new": "new", "worsened": "increased", "improved": "decreased", "resolved": "resolved",
        "unchanged": "stable"}
WORDS = "small moderate large left right basal apical stable mild no acute focal lesion effusion".split()


def arrow_schema(columns: list[str]) -> pa.Schema:
    """Recipe types for head outputs and their gold; strings for the rest; int64 for source_row."""
    specs = load_specs()
    fields = []
    for name in columns:
        task, _, field = name.removeprefix("gold__").partition("__")
        if name == "source_row":
            dtype = pa.int64()
        elif task in specs and field in specs[task].types:
            dtype = specs[task].types[field]
        else:
            dtype = pa.string()
        fields.append(pa.field(name, dtype))
    return pa.schema(fields)


def write_table(path: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema(columns)), path)


def gold_values(rng: random.Random) -> dict[str, dict]:
    specs = load_specs()
    systems = specs["rads_assignment"].rads_systems
    system = rng.choice(["BI-RADS", "LI-RADS", "Lung-RADS", "none"])
    stage = rng.choices(["N0", "N1", "N2", "N3"], [5, 3, 2, 1])[0]
    labels = {slug: rng.choices([None, "positive", "negative", "uncertain"], [70, 15, 10, 5])[0]
              for slug in specs["abnormality_detection"].labels.values()}
    labels["no_finding"] = rng.choice([None, "positive"])
    changes = [{"change": rng.choice(list(CUES)), "entity": e} for e in rng.sample(FINDINGS, rng.randint(0, 2))]
    finding = rng.choice(FINDINGS)
    return {
        "rads_assignment": {"system": system, "category": None if system == "none" else rng.choice(systems[system])},
        "n_staging": {"node_involvement": "negative" if stage == "N0" else "positive", "stage": stage},
        "m_staging": {"stage": rng.choices(["M0", "M1"], [7, 3])[0]},
        "radiology_nli": {"label": rng.choice(["entailment", "contradiction", "neutral"])},
        "abnormality_detection": labels,
        "radiology_ner": {"entities": [{"text": t, "label": lab} for t, lab in rng.sample(ENTITIES, rng.randint(1, 4))]},
        "temporal_comparison": {"changes": [c | {"cue": CUES[c["change"]]} for c in changes]},
        "impression_generation": {"text": f"{rng.choice(WORDS)} {finding}. no {rng.choice(FINDINGS)}."},
        "radiology_qa": {"answer": f"yes, {rng.choice(WORDS)} {finding}"},
    }


def predict(task: str, gold: dict, quality: float, rng: random.Random) -> dict:
    """Gold with probability `quality`, else a plausible wrong answer."""
    other = dict(gold) if rng.random() < quality else _different(task, gold, rng)
    if task == "rads_assignment" and other["system"] == "none":
        return {"system": "none", "category": None}  # how the parser writes `No applicable RADS`
    if other == gold:
        return other
    if task in ("impression_generation", "radiology_qa"):
        field = next(iter(gold))
        words = gold[field].split()
        return {field: " ".join(w if rng.random() < 0.5 else rng.choice(WORDS) for w in words)}
    if task == "radiology_ner":  # keep some entities, shortened to their last word: partial matches only
        kept = [{"text": e["text"].split()[-1], "label": e["label"]} for e in gold["entities"] if rng.random() < 0.5]
        return {"entities": kept + other["entities"][:1]}
    return other


def _different(task: str, gold: dict, rng: random.Random) -> dict:
    for _ in range(50):
        other = gold_values(rng)[task]
        if other != gold:
            return other
    return other


def write_synthetic(out: Path, rows: int = 48, seed: int = 0) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    golds = [gold_values(rng) for _ in range(rows)]
    ids = [{"source_file": "synthetic_reports.parquet", "source_row": i, "report_id": f"R{i:04d}"} for i in range(rows)]
    gold_rows = [dict(ids[i]) | {f"gold__{t}__{f}": v for t, vals in g.items() for f, v in vals.items()}
                 for i, g in enumerate(golds)]
    paths = {"gold": out / "gold.parquet"}
    write_table(paths["gold"], gold_rows)
    for name, quality, fail in (("run_a", 0.55, 0.12), ("run_b", 0.9, 0.02)):
        run_rng = random.Random(f"{seed}-{name}")
        table = [_run_row(ids[i], g, quality, fail, run_rng, i) for i, g in enumerate(golds)]
        paths[name] = out / f"{name}.parquet"
        write_table(paths[name], table)
    return paths


def _run_row(ids: dict, gold: dict, quality: float, fail: float, rng: random.Random, i: int) -> dict:
    row = dict(ids) | {"status": "ok"}
    for task in [t for t in task_ids() if t in gold]:  # the heads gold_values() labels, in registry order
        roll = rng.random()
        status = "error" if roll < fail * 2 / 3 else "truncated" if roll < fail else "ok"
        if task == "temporal_comparison" and i % 16 == 0:
            status = "not_applicable"  # no prior study for these rows
        values = predict(task, gold[task], quality, rng) if status == "ok" else {f: None for f in gold[task]}
        row |= {f"{task}__status": status, f"{task}__error": None if status == "ok" else f"synthetic {status}",
                f"{task}__model": "synthetic"} | {f"{task}__{f}": v for f, v in values.items()}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name, path in write_synthetic(args.out, args.rows, args.seed).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
