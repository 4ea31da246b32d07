"""`--report DIR`: DIR/report.html plus the PNG charts it references by relative path.

The page is self-contained static HTML (no scripts, no network). It shows labels, counts and figures
only, never report text.
"""

from __future__ import annotations

import html
from pathlib import Path

from radbatch.evaluation import charts

from .result import EvalResult, FigureResult, HeadResult, RunResult
from .table_text import _ci, _num

# Figure families drawn as a second bar chart, beside the summary chart.
DETAIL_PREFIXES = {
    "abnormality_detection": ("accuracy/",),
    "radiology_ner": ("exact/f1/", "partial/f1/"),
    "temporal_comparison": ("change_f1/",),
}
STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}img{max-width:100%;display:block;margin:.5em 0}
.primary{font-weight:bold}"""


def write_report(result: EvalResult, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    body = [f"<h1>radbatch eval</h1><p>{_e(_settings(result))}</p>", _runs_table(result.runs), _overview(result, out)]
    if result.comparison is not None:
        body.append(_comparison(result, out))
    tasks = [t for t in result.runs[0].heads] + [t for t in result.runs[-1].heads if t not in result.runs[0].heads]
    for task in tasks:
        body.append(_head_section(task, [r for r in result.runs if task in r.heads], out))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>radbatch eval report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _e(text) -> str:
    return html.escape(str(text))


def _settings(result: EvalResult) -> str:
    s = result.settings
    return (f"Bootstrap: {s.resamples} resamples, seed {s.seed}, {s.confidence:.0%} percentile intervals. "
            "Baseline = always predicting the majority gold class. Bold = the paper's metric.")


def _table(header: list[str], rows: list[list], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(f"<tr class='{(classes or [''] * len(rows))[i]}'>" + "".join(f"<td>{_e(c)}</td>" for c in row)
                   + "</tr>" for i, row in enumerate(rows))
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(out: Path, name: str, alt: str) -> str:
    return f"<img src='{_e(name)}' alt='{_e(alt)}'>"


def _runs_table(runs: list[RunResult]) -> str:
    rows = [[r.label, r.join.prediction_file, r.join.gold_file, r.join.method, r.join.gold_rows, r.join.matched,
             r.join.missing_predictions, r.join.predictions_without_gold, r.join.duplicate_ids] for r in runs]
    notes = "".join(f"<li>{_e(r.label)}: {_e(n)}</li>" for r in runs for n in r.join.notes)
    skipped = "".join(f"<li>{_e(r.label)}: skipped {_e(t)}: {_e(w)}</li>" for r in runs for t, w in r.skipped.items())
    header = ["run", "predictions", "gold", "join", "gold rows", "matched", "missing (scored wrong)",
              "predictions without gold", "duplicate ids"]
    return "<h2>Runs</h2>" + _table(header, rows) + (f"<ul>{notes}{skipped}</ul>" if notes or skipped else "")


def _overview(result: EvalResult, out: Path) -> str:
    """Each head's paper metric in one chart (one bar per run)."""
    runs = {r.label: {t: h.metrics[h.primary] for t, h in r.heads.items() if h.primary in h.metrics}
            for r in result.runs}
    tasks = list(dict.fromkeys(t for figures in runs.values() for t in figures))
    if not tasks:
        return ""
    charts.bars(out / "overview.png", "the paper's metric per head", runs, tasks)
    return "<h2>Overview</h2>" + _img(out, "overview.png", "paper metric per head")


def _comparison(result: EvalResult, out: Path) -> str:
    parts = ["<h2>Comparison: b - a (paired bootstrap)</h2>"]
    for task, diffs in result.comparison.items():
        summary = {k: d for k, d in diffs.items() if d.summary}
        if not summary:
            continue
        name = f"comparison_{task}.png"
        charts.differences(out / name, f"{task}: b - a", summary)
        rows = [[k, _num(d.a), _num(d.b), _num(d.diff, True), _ci(d.ci_low, d.ci_high, True), _num(d.p_value), d.n]
                for k, d in diffs.items()]
        parts += [f"<h3>{_e(task)}</h3>", _img(out, name, f"{task} differences"),
                  f"<details><summary>all {len(rows)} figures</summary>"
                  + _table(["metric", "a", "b", "b - a", "95% CI", "p", "n"], rows) + "</details>"]
    return "".join(parts)


def _head_section(task: str, runs: list[RunResult], out: Path) -> str:
    heads = {r.label: r.heads[task] for r in runs}
    first = next(iter(heads.values()))
    parts = [f"<h2 id='{_e(task)}'>{_e(task)}</h2>", _counts(heads)]
    summary = [k for k, f in first.metrics.items() if f.summary]
    name = f"{task}_summary.png"
    charts.bars(out / name, f"{task}: summary", {label: h.metrics for label, h in heads.items()}, summary)
    parts.append(_img(out, name, f"{task} summary chart"))
    detail = [k for k, f in first.metrics.items() if not f.summary and k.startswith(DETAIL_PREFIXES.get(task, ("\0",)))]
    if detail:
        name = f"{task}_detail.png"
        charts.bars(out / name, f"{task}: per label / class", {label: h.metrics for label, h in heads.items()}, detail)
        parts.append(_img(out, name, f"{task} detail chart"))
    for label, h in heads.items():
        matrices = h.extras.get("confusion")
        if matrices:
            name = f"{task}_confusion_{label}.png"
            charts.confusion_grid(out / name, f"{task} confusion ({label}; rows = gold)", matrices)
            parts.append(_img(out, name, f"{task} confusion matrices, run {label}"))
        parts.append(f"<details><summary>all figures, run {_e(label)}</summary>{_metrics_table(h)}</details>")
    for label, h in heads.items():
        if h.calibration:
            parts.append(_calibration_section(task, label, h.calibration, out))
    return "".join(parts)


def _calibration_section(task: str, label: str, calib: dict, out: Path) -> str:
    """ECE, reliability diagram, risk-coverage curve and the target-precision threshold (raw and, with a
    calibration file, after temperature scaling)."""
    versions = {"raw": calib["raw"]}
    if "calibrated" in calib:
        versions[f"temperature {calib['temperature']:.3g}"] = calib["calibrated"]
    parts = [f"<h3>{_e(task)}: confidence and calibration (run {_e(label)})</h3>",
             f"<p>{calib['raw']['items']} scored items with a confidence; {calib['without_confidence']} without one "
             "(error, truncated, missing) are left out of these figures.</p>"]
    rows = []
    for name, v in versions.items():
        t = v.get("threshold")
        reach = "-" if t is None else (f"confidence >= {t['threshold']:.4f}: coverage {t['coverage']:.1%} "
                                       f"({t['accepted']} of {t['items']}), precision {t['precision']:.3f}"
                                       if t["status"] == "reached" else t["status"])
        rows.append([name, v["items"], _num(v["accuracy"]), _num(v["mean_confidence"]), _num(v["ece"]),
                     _num(v["nll"]), reach])
    target = calib["raw"].get("threshold")
    header = ["confidence", "items", "accuracy", "mean confidence", "ECE (10 bins)", "NLL",
              f"threshold for precision {target['target_precision']:g}" if target else "threshold"]
    parts.append(_table(header, rows))
    if calib["raw"]["items"]:
        name = f"{task}_reliability_{label}.png"
        run = "" if label == "run" else f" (run {label})"
        charts.reliability(out / name, f"{task}: reliability{run}",
                           {k: v["reliability"] for k, v in versions.items()})
        parts.append(_img(out, name, f"{task} reliability diagram, run {label}"))
        name = f"{task}_risk_coverage_{label}.png"
        charts.risk_coverage(out / name, f"{task}: risk-coverage{run}",
                             {"raw": calib["raw"]["risk_coverage"]}, target)
        parts.append(_img(out, name, f"{task} risk-coverage curve, run {label}"))
    return "".join(parts)


def _counts(heads: dict[str, HeadResult]) -> str:
    keys = list(next(iter(heads.values())).counts)
    rows = [[label] + [h.counts[k] for k in keys] for label, h in heads.items()]
    extra = "".join(f"<p>run {_e(label)}: error severity {_e(h.extras['severity'])}</p>"
                    for label, h in heads.items() if "severity" in h.extras)
    return _table(["run"] + keys, rows) + extra


def _metrics_table(h: HeadResult) -> str:
    def row(key: str, f: FigureResult) -> list:
        base = _num(f.baseline) if f.baseline is not None else "-"
        return [key, _num(f.value), _ci(f.ci_low, f.ci_high), f.n, "-" if f.support is None else f.support, base]
    rows = [row(k, f) for k, f in h.metrics.items()]
    classes = ["primary" if k == h.primary else "" for k in h.metrics]
    return _table(["metric", "value", "95% CI", "n", "support", "baseline"], rows, classes)
