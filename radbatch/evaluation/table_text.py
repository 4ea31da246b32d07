"""The plain-text table printed by `radbatch eval`: summary figures only (metrics.json has them all)."""

from __future__ import annotations

import math

from .output_rates import rates_line
from .result import (
    DiffResult,
    EvalResult,
    FigureResult,
    HeadResult,
    JoinReport,
    RunResult,
)


def _num(x: float | None, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _ci(low: float, high: float, signed: bool = False) -> str:
    return f"[{_num(low, signed)}, {_num(high, signed)}]"


def format_table(result: EvalResult) -> str:
    s = result.settings
    lines = [f"bootstrap: {s.resamples} resamples, seed {s.seed}, {s.confidence:.0%} percentile intervals; "
             "* = the paper's metric; baseline = always the majority gold class"]
    for run in result.runs:
        lines += [""] + _run_lines(run)
    if result.comparison is not None:
        lines += [""] + _comparison_lines(result)
    return "\n".join(lines) + "\n"


def _join_line(j: JoinReport) -> str:
    return (f"join {j.method}: {j.gold_rows} gold rows, {j.matched} with predictions, {j.missing_predictions} "
            f"missing (scored wrong); {j.predictions_without_gold} prediction rows without gold (not scored)")


def _run_lines(run: RunResult) -> list[str]:
    title = f"run {run.label}: " if run.label != "run" else ""
    lines = [f"{title}{run.join.prediction_file}  (gold: {run.join.gold_file})", _join_line(run.join)]
    lines += [f"note: {n}" for n in run.join.notes]
    for task, why in run.skipped.items():
        lines.append(f"skipped {task}: {why}")
    for head in run.heads.values():
        lines += [""] + _head_lines(head)
    return lines


def _counts_line(h: HeadResult) -> str:
    c = h.counts
    other = f", other status {c['other_status']}" if c["other_status"] else ""
    return (f"{h.task}: {c['scored']} scored of {c['labelled']} labelled | ok {c['ok']}, error {c['error']}, "
            f"truncated {c['truncated']}, missing {c['missing']}{other} | not_applicable {c['not_applicable']} | "
            f"invalid gold {c['invalid_gold']} | invalid outputs {c['invalid_predictions']}")


def _head_lines(h: HeadResult) -> list[str]:
    rows = [(f"{key} *" if key == h.primary else key, f) for key, f in h.metrics.items() if f.summary]
    width = max([len(k) for k, _ in rows] + [6])
    lines = [_counts_line(h)] + ([f"  {rates_line(h.rates)}"] if h.rates else [])
    lines += [f"  {'metric':<{width}}  {'value':>6}  {'95% CI':<14}  {'n':>5}  baseline"]
    for key, f in rows:
        lines.append(_figure_line(key, f, width))
    lines += _calibration_lines(h.calibration)
    return lines


def _calibration_lines(calib: dict) -> list[str]:
    if not calib:
        return []
    lines = []
    versions = [("raw", calib["raw"])] + ([(f"T={calib['temperature']:.3g}", calib["calibrated"])]
                                          if "calibrated" in calib else [])
    for name, v in versions:
        line = (f"  confidence ({name}): {v['items']} items, ECE {_num(v['ece'])}, mean confidence "
                f"{_num(v['mean_confidence'])}, accuracy {_num(v['accuracy'])}")
        t = v.get("threshold")
        if t is not None:
            line += (f"; precision {t['target_precision']:g}: "
                     + (f"confidence >= {t['threshold']:.4f} accepts {t['accepted']} ({t['coverage']:.1%})"
                        if t["status"] == "reached" else t["status"]))
        lines.append(line)
    return lines


def _figure_line(key: str, f: FigureResult, width: int) -> str:
    base = _num(f.baseline) if f.baseline is not None else "-"
    return f"  {key:<{width}}  {_num(f.value):>6}  {_ci(f.ci_low, f.ci_high):<14}  {f.n:>5}  {base}"


def _comparison_lines(result: EvalResult) -> list[str]:
    lines = ["comparison: b - a, paired bootstrap over the items scored in both runs"]
    primaries = {t: h.primary for t, h in result.runs[0].heads.items()}
    rows = [(f"{task} {key}{' *' if key == primaries.get(task) else ''}", d)
            for task, diffs in result.comparison.items() for key, d in diffs.items() if d.summary]
    width = max([len(k) for k, _ in rows] + [6])
    lines.append(f"  {'metric':<{width}}  {'a':>6}  {'b':>6}  {'b - a':>6}  {'95% CI of b - a':<16}  {'p':>5}  {'n':>5}")
    lines += [_diff_line(key, d, width) for key, d in rows]
    return lines


def _diff_line(key: str, d: DiffResult, width: int) -> str:
    return (f"  {key:<{width}}  {_num(d.a):>6}  {_num(d.b):>6}  {_num(d.diff, True):>6}  "
            f"{_ci(d.ci_low, d.ci_high, True):<16}  {_num(d.p_value):>5}  {d.n:>5}")
