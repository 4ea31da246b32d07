"""Quality of model sets on a fixed archive: per head the primary metric with its bootstrap 95% interval, the
majority baseline, issue 12's target metric, and the truncation and invalid-output rates.

    # annotate the test archive with each set, then score (each set is LABEL or LABEL=annotate options;
    # a bare LABEL uses recipes/models.toml + routing.toml, the current default)
    .venv/bin/python bench/quality.py run --out ~/quality/test default "zero-shot=--model smollm2"
    .venv/bin/python bench/quality.py run --archive sample_data/quality_dev.parquet --limit 48 --out DIR default
    # score annotated files that exist already (gold rides along in annotate's output)
    .venv/bin/python bench/quality.py score default=DIR/default.parquet
    # the baselines, from gold alone (no model)
    .venv/bin/python bench/quality.py baselines sample_data/quality_test.parquet
    # an archive without gold (radmatch's real reports): truncation and invalid rates only
    .venv/bin/python bench/quality.py run --archive ~/radmatch.parquet --out DIR default

Annotate runs 1 worker x 2 threads with the archive's column options (question, hypothesis, patient, date,
modality: only those the archive has), so temporal rows are paired with their prior in the same archive.
Wrap CPU-heavy runs in bench/exclusive. A summary JSON (`--json`) keeps every number printed.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from radbatch.evaluation import Settings, evaluate
from radbatch.evaluation.task_specs import task_ids
from radbatch.evaluation.output_rates import frame_rates

# issue 12, item 5: the shipped default's targets on the test archive, by `radbatch eval`'s names
TARGETS = {
    "rads_assignment": ("accuracy", 0.95),
    "impression_generation": ("rouge_l", 0.35),
    "temporal_comparison": ("change_f1/micro", 0.5),
    "radiology_ner": ("exact/f1/micro", 0.5),
    "n_staging": ("stage/accuracy", 0.75),
    "m_staging": ("stage/accuracy", 0.90),
    "radiology_nli": ("label/accuracy", 0.80),
    "abnormality_detection": ("f1/positive/macro/competition_5", 0.80),
    "radiology_qa": ("rouge_l", 0.65),
}
COLUMN_OPTIONS = {"question": "--question-column", "hypothesis": "--hypothesis-column",
                  "patient_id": "--patient-column", "study_date": "--date-column", "modality": "--modality-column"}
MAX_TRUNCATION = 0.02


def annotate_command(archive: Path, output: Path, extra: list[str], limit: int | None) -> list[str]:
    import pyarrow.parquet as pq

    names = pq.read_schema(archive).names
    cmd = [sys.executable, "-m", "radbatch", "annotate", str(archive), "-o", str(output), "--workers", "1",
           "--threads", "2", "--quiet", "--restart"]
    for column, option in COLUMN_OPTIONS.items():
        if column in names:
            cmd += [option, column]
    return cmd + (["--limit", str(limit)] if limit else []) + extra


def has_gold(path: Path) -> bool:
    import pyarrow.parquet as pq

    return any(c.startswith("gold__") for c in pq.read_schema(path).names)


def _fmt(x) -> str:
    return "n/a" if x is None or x != x else f"{x:.3f}"


def _ci(f) -> str:
    return f"{_fmt(f.value)} [{_fmt(f.ci_low)}, {_fmt(f.ci_high)}]"


def _rate(r: dict) -> str:
    return "n/a" if not r["n"] else f"{r['rate']:.3f} ({r['count']}/{r['n']})"


def score(label: str, path: Path, settings: Settings) -> tuple[list[str], dict]:
    """Table lines and JSON for one annotated file with inline gold."""
    result = evaluate([path], settings=settings)
    run = result.runs[0]
    lines = [f"{label}: {path}  ({run.join.matched} reports with gold)",
             "| head | n | primary metric | value [95% CI] | majority baseline | target metric | value [95% CI] "
             "| baseline | target | truncation | invalid output |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    out = {}
    for task, head in run.heads.items():
        primary = head.metrics[head.primary]
        key, goal = TARGETS[task]
        target = head.metrics.get(key)
        met = "" if target is None or target.value != target.value else (" met" if target.value >= goal else " missed")
        lines.append(
            f"| {task} | {head.counts['scored']} | {head.primary} | {_ci(primary)} | {_fmt(primary.baseline)} | {key} | "
            f"{_ci(target) if target else 'n/a'} | {_fmt(target.baseline) if target else '-'} | >= {goal}{met} | "
            f"{_rate(head.rates['truncation'])} | {_rate(head.rates['invalid_output'])} |")
        out[task] = {"n": head.counts["scored"], "primary": head.primary, "value": primary.value,
                     "ci": [primary.ci_low, primary.ci_high], "baseline": primary.baseline,
                     "target_metric": key, "target": goal,
                     "target_value": None if target is None else target.value,
                     "target_ci": None if target is None else [target.ci_low, target.ci_high],
                     "target_baseline": None if target is None else target.baseline,
                     "rates": head.rates, "counts": head.counts}
    for task, why in run.skipped.items():
        lines.append(f"skipped {task}: {why}")
    return lines, out


def rates_only(label: str, path: Path) -> tuple[list[str], dict]:
    """For an archive without gold: per head, where it ran and how often its output was cut or refused."""
    import polars as pl

    frame = pl.read_parquet(path, columns=[c for c in _columns(path) if c.endswith(("__status", "__error"))])
    lines = [f"{label}: {path}  ({frame.height} reports, no gold)",
             "| head | ran | not applicable | ok | truncation | invalid output | other errors |",
             "|---|---|---|---|---|---|---|"]
    out = {}
    for task in task_ids():
        r = frame_rates(frame, task)
        if r is None:
            continue
        out[task] = r
        lines.append(f"| {task} | {r['ran']} | {r['not_applicable']} | {r['ok']} | {_rate(r['truncation'])} | "
                     f"{_rate(r['invalid_output'])} | {_rate(r['other_error'])} |")
    return lines, out


def _columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return pq.read_schema(path).names


def report(label: str, path: Path, settings: Settings) -> tuple[list[str], dict]:
    return score(label, path, settings) if has_gold(path) else rates_only(label, path)


def baselines(archive: Path, settings: Settings) -> tuple[list[str], dict]:
    """From gold alone. Closed-label heads: eval's majority baseline (gold scored as the prediction, so the
    same code computes it). Text, entity and change-list heads have no majority class: the score of always
    giving the most frequent gold answer stands in, marked as such."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from radbatch.evaluation.task_specs import load_specs

    table = pq.read_table(archive)
    specs = load_specs()
    columns = {}
    constant = {}
    for task in task_ids():
        fields = [f for f in specs[task].fields if f"gold__{task}__{f}" in table.column_names]
        gold = {f: table.column(f"gold__{task}__{f}").to_pylist() for f in fields}
        labelled = [any(gold[f][i] is not None for f in fields) for i in range(table.num_rows)]
        if not any(labelled):
            continue  # no gold for this head in the archive
        answers = collections.Counter(json.dumps([gold[f][i] for f in fields], sort_keys=True)
                                      for i in range(table.num_rows) if labelled[i])
        top = json.loads(answers.most_common(1)[0][0])  # ties: the first seen, in archive order
        constant[task] = (dict(zip(fields, top)), answers.most_common(1)[0][1], sum(labelled))
        columns[f"{task}__status"] = pa.array(["ok" if x else None for x in labelled], pa.string())
        for f, value in zip(fields, top):
            typ = table.schema.field(f"gold__{task}__{f}").type
            columns[f"{task}__{f}"] = pa.array([value if x else None for x in labelled], typ)
    gold_cols = {c: table.column(c) for c in table.column_names if c.startswith("gold__")}
    keys = {"report_id": table.column("report_id")}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "constant.parquet"
        pq.write_table(pa.table(keys | columns | gold_cols), path)
        run = evaluate([path], settings=settings).runs[0]
    lines = [f"baselines from the gold of {archive} ({table.num_rows} reports)",
             "| head | n | primary metric | majority baseline | target metric | its baseline | "
             "most frequent gold answer, always | its share |",
             "|---|---|---|---|---|---|---|---|"]
    out = {}
    for task, head in run.heads.items():
        key = TARGETS[task][0]
        primary, target = head.metrics[head.primary], head.metrics.get(key)
        answer, count, n = constant[task]
        lines.append(f"| {task} | {n} | {head.primary} | {_fmt(primary.baseline)} | {key} | "
                     f"{_fmt(target.baseline) if target else '-'} | {head.primary} {_fmt(primary.value)}; "
                     f"{key} {_fmt(target.value) if target else 'n/a'} | "
                     f"{count}/{n} |")
        out[task] = {"n": n, "primary": head.primary, "majority_baseline": primary.baseline,
                     "target_metric": key, "target_baseline": None if target is None else target.baseline,
                     "constant_answer_primary": primary.value,
                     "constant_answer_target": None if target is None else target.value,
                     "constant_answer_share": count / n}
    return lines, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("run", help="annotate the archive with each model set, then score")
    run.add_argument("sets", nargs="+", help="LABEL or LABEL=annotate options (e.g. 'zero-shot=--model smollm2')")
    run.add_argument("--archive", type=Path, default=REPO / "sample_data" / "quality_test.parquet")
    run.add_argument("--out", type=Path, required=True, help="folder for LABEL.parquet files")
    run.add_argument("--limit", type=int, help="only the archive's first N reports")
    sc = sub.add_parser("score", help="score annotated files (LABEL=FILE)")
    sc.add_argument("files", nargs="+")
    bl = sub.add_parser("baselines", help="majority baselines from gold alone")
    bl.add_argument("archive", type=Path)
    for p in (run, sc, bl):
        p.add_argument("--json", type=Path, help="write every printed number here")
        p.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    settings = Settings(resamples=args.resamples)
    summary: dict = {}
    if args.mode == "baselines":
        lines, summary = baselines(args.archive, settings)
        print("\n".join(lines))
    else:
        jobs = []
        if args.mode == "run":
            args.out.mkdir(parents=True, exist_ok=True)
            for item in args.sets:
                label, _, options = item.partition("=")
                output = args.out / f"{label}.parquet"
                cmd = annotate_command(args.archive, output, options.split(), args.limit)
                print("$ " + " ".join(cmd[1:]), flush=True)
                start = time.monotonic()
                subprocess.run(cmd, check=True, cwd=REPO)
                print(f"  {label}: {time.monotonic() - start:.0f} s", flush=True)
                jobs.append((label, output))
        else:
            jobs = [(item.partition("=")[0], Path(item.partition("=")[2])) for item in args.files]
        for label, path in jobs:
            lines, summary[label] = report(label, path, settings)
            print("\n" + "\n".join(lines))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        from radbatch.evaluation.result import _clean

        args.json.write_text(json.dumps(_clean(summary), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
