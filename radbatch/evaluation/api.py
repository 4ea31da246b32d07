"""`evaluate`: score one annotated archive against gold, or compare two runs on the same gold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from .bootstrap import estimate, paired_difference
from .calibration import apply_temperature, summary
from .confidence import confidence_items, has_confidence
from .errors import EvalError
from .heads import head, scored_rows
from .joins import GoldTable, gold_table, join, read_parquet
from .output_rates import format_errors_among, head_rates
from .result import EvalResult, HeadResult, RunResult, Settings
from .rows import GOLD_PREFIX, ROW_KEY, HeadRows
from .task_specs import TaskSpec, load_specs


def evaluate(predictions: list[Path], gold: Path | None = None, id_column: str | None = None,
             report_dir: Path | None = None, tasks: list[str] | None = None,
             settings: Settings = Settings(), target_precision: float | None = None,
             temperatures: dict[str, float] | None = None) -> EvalResult:
    """Score 1 run, or 2 runs plus their paired differences (b - a).

    gold: a file with gold__<task>__<field> columns; None = those columns of the first predictions file.
    id_column: None joins on (source_file, source_row) when both files have them, else on report_id;
    a name forces a join on that column. report_dir: also write report.html, charts and metrics.json there.
    target_precision: for heads with confidence columns, find the lowest threshold reaching it on the gold.
    temperatures: task -> temperature (calibration.read_calibration); shows calibration before and after.
    """
    if target_precision is not None and not 0 < target_precision <= 1:
        raise EvalError(f"--target-precision must be in (0, 1], got {target_precision}.")
    predictions = [Path(p) for p in predictions]
    if not 1 <= len(predictions) <= 2:
        raise EvalError(f"give 1 predictions file, or 2 to compare runs; got {len(predictions)}.")
    specs = load_specs()
    for task in tasks or []:
        head(task)  # unknown names fail here, listing the known ones
    frames = [read_parquet(p, "predictions", id_column) for p in predictions]
    gold_src = gold_table(predictions[0], frames[0], Path(gold) if gold else None, id_column)
    wanted = _tasks(gold_src.all_columns, tasks, specs)
    labels = ["run"] if len(predictions) == 1 else ["a", "b"]
    calib = (target_precision, temperatures or {})
    scored = [_score_run(label, path, frame, gold_src, id_column, wanted, specs, settings, calib)
              for label, path, frame in zip(labels, predictions, frames)]
    runs = [run for run, _ in scored]
    unknown = [c for c in gold_src.all_columns if c.startswith(GOLD_PREFIX) and c not in _declared_gold(specs)]
    if unknown:
        runs[0].join.notes.append(f"ignored gold columns that no task recipe declares: {', '.join(unknown)}")
    if not any(run.heads for run in runs):
        reasons = "; ".join(f"{task}: {why}" for run in runs for task, why in run.skipped.items())
        raise EvalError(f"nothing to evaluate: no head has both gold and prediction columns ({reasons}).")
    with_confidence = any(h.calibration for r in runs for h in r.heads.values())
    if (target_precision is not None or temperatures) and not with_confidence:
        runs[0].join.notes.append("--target-precision / --calibration: no evaluated head has confidence columns "
                                  "(<task>__confidence); nothing to threshold or calibrate.")
    comparison = _compare(specs, [rows for _, rows in scored], settings) if len(runs) == 2 else None
    result = EvalResult(settings, runs, comparison)
    if report_dir is not None:
        from .report_html import write_report

        write_report(result, Path(report_dir))
        result.write_json(Path(report_dir) / "metrics.json")
    return result


def _score_run(label: str, path: Path, frame: pl.DataFrame, gold_src: GoldTable, id_column: str | None, wanted: list[str],
               specs: dict[str, TaskSpec], settings: Settings,
               calib: tuple[float | None, dict[str, float]] = (None, {})) -> tuple[RunResult, dict[str, HeadRows]]:
    table, report = join(path, frame, gold_src, id_column)
    run, rows_by_task = RunResult(label, report, {}), {}
    for task in wanted:
        why = _why_skipped(specs[task], frame.columns, path)
        if why:
            run.skipped[task] = why
            continue
        rows, counts = scored_rows(table, specs[task])
        rows_by_task[task] = rows
        run.heads[task] = _head_result(specs[task], rows, counts, settings)
        if has_confidence(specs[task], frame.columns):
            run.heads[task].calibration = _calibration(table, specs[task], *calib)
        run.heads[task].rates = head_rates(run.heads[task].counts,
                                           format_errors_among(table, task, rows.keys, rows.status, ROW_KEY))
    return run, rows_by_task


def _calibration(table: pl.DataFrame, spec: TaskSpec, target: float | None, temperatures: dict[str, float]) -> dict:
    items = confidence_items(table, spec)
    out = {"scored_items": items.scored, "without_confidence": items.without_confidence,
           "raw": summary(items.confidence, items.correct, target)}
    if spec.id in temperatures:
        t = temperatures[spec.id]
        out["temperature"] = t
        out["calibrated"] = summary(apply_temperature(items.confidence, t), items.correct, target)
    return out


def _declared_gold(specs: dict[str, TaskSpec]) -> dict[str, str]:
    return {f"{GOLD_PREFIX}{t}__{f}": t for t, spec in specs.items() for f in spec.fields}


def _tasks(gold_columns: list[str], requested: list[str] | None, specs: dict[str, TaskSpec]) -> list[str]:
    declared = _declared_gold(specs)
    with_gold = [t for t in specs if any(declared.get(c) == t for c in gold_columns)]
    if requested:
        lacking = [t for t in requested if t not in with_gold]
        if lacking:
            raise EvalError(f"no gold columns for {', '.join(lacking)} (gold__<task>__<field>). Heads with gold: "
                            f"{', '.join(with_gold) or 'none'}. Drop them from --tasks or add their gold.")
        return [t for t in specs if t in requested]
    return with_gold


def _why_skipped(spec: TaskSpec, columns: list[str], path: Path) -> str | None:
    if any(f"{spec.id}__{f}" in columns for f in spec.fields):
        return None
    return f"'{path}' has none of the output columns {', '.join(f'{spec.id}__{f}' for f in spec.fields)}"


def _head_result(spec: TaskSpec, rows: HeadRows, counts: dict[str, int], settings: Settings) -> HeadResult:
    block = head(spec.id).score(spec, rows)
    extras = dict(block.extras)
    counts["invalid_predictions"] = int(extras.pop("invalid_predictions", 0))
    return HeadResult(spec.id, head(spec.id).primary, counts, estimate(block, settings, spec.id), extras)


def _compare(specs: dict[str, TaskSpec], scored: list[dict[str, HeadRows]], settings: Settings) -> dict:
    """Paired differences on the items both runs scored (not_applicable may differ between runs)."""
    out = {}
    for task in [t for t in scored[0] if t in scored[1]]:
        a, b = scored[0][task], scored[1][task]
        common = np.intersect1d(a.keys, b.keys)
        a, b = a.subset(np.isin(a.keys, common)), b.subset(np.isin(b.keys, common))
        a, b = a.take(np.argsort(a.keys, kind="stable")), b.take(np.argsort(b.keys, kind="stable"))
        blocks = [head(task).score(specs[task], rows) for rows in (a, b)]
        out[task] = paired_difference(blocks[0], blocks[1], settings, task)
    return out



def calibrate(dev: Path, output: Path, gold: Path | None = None, id_column: str | None = None,
              tasks: list[str] | None = None) -> dict:
    """Fit a temperature per head with confidences on an annotated dev file with gold; write `output`.

    Returns task -> calibration.Temperature. The dev file must not be the file the thresholds are later
    judged on, or the after-figures flatter the calibration.
    """
    from .calibration import Temperature, fit_temperature, nll, write_calibration

    specs = load_specs()
    frame = read_parquet(Path(dev), "dev", id_column)
    gold_src = gold_table(Path(dev), frame, Path(gold) if gold else None, id_column)
    table, _ = join(Path(dev), frame, gold_src, id_column)
    wanted = [t for t in _tasks(gold_src.all_columns, tasks, specs) if has_confidence(specs[t], frame.columns)]
    if not wanted:
        raise EvalError(f"'{dev}' has no head with both gold and confidence columns (<task>__confidence); "
                        "annotate it with a radbatch that writes confidences, and add gold.")
    fitted = {}
    for task in wanted:
        items = confidence_items(table, specs[task])
        if not items.confidence.size:
            continue
        t = fit_temperature(items.confidence, items.correct)
        fitted[task] = Temperature(t, int(items.confidence.size), nll(items.confidence, items.correct),
                                   nll(apply_temperature(items.confidence, t), items.correct))
    if not fitted:
        raise EvalError(f"no scored row of '{dev}' has a confidence; nothing to fit.")
    write_calibration(Path(output), fitted, Path(dev).name)
    return fitted
