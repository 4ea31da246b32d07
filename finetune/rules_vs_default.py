"""Side by side on one dev archive: two annotated outputs (A = the shipped default, B = the rules member),
scored by `radbatch eval` (paired bootstrap), one line per metric with A, B, B - A and their intervals.

    .venv/bin/python finetune/rules_vs_default.py A.parquet B.parquet [--tasks abnormality_detection]

Prints only numbers and metric names (never report text). Used for docs/finetune-results.md "Rules member".
"""

from __future__ import annotations

import argparse

METRICS = {
    "abnormality_detection": ("f1/positive/macro/competition_5", "f1/positive/macro/all_14",
                              "f1/positive/micro/competition_5", "per_label_accuracy"),
    "rads_assignment": ("accuracy",),
    "m_staging": ("stage/accuracy", "stage/macro_f1"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tasks", default="abnormality_detection")
    args = ap.parse_args()
    from radbatch.evaluation import evaluate
    tasks = args.tasks.split(",")
    result = evaluate([args.a, args.b], tasks=tasks)
    print(f"A = {args.a}\nB = {args.b}")
    print(f"{'metric':<56}{'A':>22}{'B':>22}{'B - A':>24}   n")
    for task in tasks:
        diffs = (result.comparison or {}).get(task, {})
        a_run, b_run = (r.heads.get(task) for r in result.runs)
        for name in METRICS.get(task, ()):
            a, b, d = a_run.metrics[name], b_run.metrics[name], diffs.get(name)
            cell = lambda f: f"{f.value:.3f} [{f.ci_low:.3f}, {f.ci_high:.3f}]"  # noqa: E731
            diff = f"{d.diff:+.3f} [{d.ci_low:+.3f}, {d.ci_high:+.3f}]" if d else "-"
            print(f"{task + ' ' + name:<56}{cell(a):>22}{cell(b):>22}{diff:>24}   {b.n}")


if __name__ == "__main__":
    main()
