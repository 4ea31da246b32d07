"""Markdown table of each head's primary metric across runs, from `radbatch eval --json` files.

    python finetune/results_table.py zero-shot=a.json member-a=b.json ... [--metric rads_assignment=accuracy]

One row per head: the metric, n, the majority-class baseline (classification heads), then per run the value
with its bootstrap 95% interval. Numbers are copied from the metrics.json files, nothing is recomputed.
"""

from __future__ import annotations

import argparse
import json

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("runs", nargs="+", help="LABEL=metrics.json")
parser.add_argument("--metric", action="append", default=[], help="TASK=METRIC instead of the head's primary one")
args = parser.parse_args()

runs = []
for item in args.runs:
    label, _, path = item.partition("=")
    runs.append((label, json.load(open(path))["runs"][0]["heads"]))
override = dict(m.split("=", 1) for m in args.metric)

tasks = []
for _, heads in runs:
    tasks += [t for t in heads if t not in tasks]
print("| head | metric | n | baseline | " + " | ".join(label for label, _ in runs) + " |")
print("|---|---|---|---|" + "---|" * len(runs))
for task in tasks:
    first = next(h[task] for _, h in runs if task in h)
    metric = override.get(task, first["primary"])
    m0 = first["metrics"][metric]
    base = "-" if m0["baseline"] is None else f"{m0['baseline']:.2f}"
    cells = []
    for _, heads in runs:
        m = heads.get(task, {}).get("metrics", {}).get(metric)
        cells.append("-" if m is None or m["value"] is None else
                     f"{m['value']:.2f} [{m['ci_low']:.2f}, {m['ci_high']:.2f}]")
    ns = {heads[task]["metrics"][metric]["n"] for _, heads in runs if task in heads}
    print(f"| {task} | {metric} | {'/'.join(str(n) for n in sorted(ns))} | {base} | " + " | ".join(cells) + " |")
