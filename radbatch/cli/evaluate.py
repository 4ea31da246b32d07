"""`radbatch eval` and `radbatch calibrate`: parse options, call the evaluation library, print the result.

Errors follow the command group's one policy (radbatch/cli/policy.py): EvalError is an input error (exit 2), an
output that cannot be written a storage error (exit 4). Only click is imported at module level; the library
(numpy, polars, ...) loads when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from .policy import handle_errors, writing


def _tasks(value: str | None) -> list[str] | None:
    if not value:
        return None
    from radbatch.evaluation.task_specs import task_ids

    known = task_ids()   # recipes that do not load: an EvalError listing every problem (exit 2, the one policy)
    tasks = [t.strip() for t in value.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise click.UsageError(f"Unknown task {', '.join(map(repr, unknown))} in --tasks. Known: {', '.join(known)}")
    return tasks


@click.command("eval")
@click.argument("predictions", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--gold", type=click.Path(path_type=Path, dir_okay=False),
              help="Parquet file with gold__<task>__<field> columns (default: those in the first PREDICTIONS file).")
@click.option("--id-column", default=None,
              help="Join predictions and gold on this column. Default: source_file + source_row when both "
                   "files have them, else report_id.")
@click.option("--report", "report_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Write DIR/report.html with charts, and DIR/metrics.json.")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write all figures to this metrics.json file.")
@click.option("--tasks", "tasks_text", help="Comma-separated heads to evaluate (default: every head with gold).")
@click.option("--target-precision", type=click.FloatRange(0, 1, min_open=True),
              help="For heads with confidence columns: the lowest confidence threshold whose accepted rows reach "
                   "this precision on the gold, e.g. 0.98, and the coverage it leaves.")
@click.option("--calibration", "calibration_file", type=click.Path(path_type=Path, dir_okay=False),
              help="calibration.toml from `radbatch calibrate`: also show calibration after temperature scaling.")
def eval_command(predictions: tuple[Path, ...], gold: Path | None, id_column: str | None, report_dir: Path | None,
                 json_path: Path | None, tasks_text: str | None, target_precision: float | None,
                 calibration_file: Path | None) -> None:
    """Score annotated PREDICTIONS against gold labels with the RadLite metrics.

    Give one Parquet file to evaluate it, or two (A B) to also get the paired differences B - A.
    """
    if len(predictions) > 2:
        raise click.UsageError(f"give 1 PREDICTIONS file, or 2 to compare runs; got {len(predictions)}.")
    tasks = _tasks(tasks_text)
    from radbatch.evaluation.api import evaluate
    from radbatch.evaluation.table_text import format_table

    temperatures = None
    if calibration_file is not None:
        from radbatch.evaluation.calibration import read_calibration
        from radbatch.evaluation.confidence import confidence_tasks

        temperatures = read_calibration(calibration_file, confidence_tasks())
    with writing(hint="Choose a writable --report / --json location."):
        result = evaluate(list(predictions), gold, id_column, report_dir, tasks,
                          target_precision=target_precision, temperatures=temperatures)
        if json_path is not None:
            result.write_json(json_path)
    click.echo(format_table(result), nl=False)
    if report_dir is not None:
        click.echo(f"report: {report_dir / 'report.html'}")


@click.command("calibrate")
@click.argument("dev", type=click.Path(path_type=Path, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="calibration.toml to write (one temperature per head with confidences).")
@click.option("--gold", type=click.Path(path_type=Path, dir_okay=False),
              help="Parquet file with gold__<task>__<field> columns (default: those in DEV).")
@click.option("--id-column", default=None, help="Join DEV and --gold on this column (as in `radbatch eval`).")
@click.option("--tasks", "tasks_text", help="Comma-separated heads (default: every head with gold and confidences).")
def calibrate_command(dev: Path, output: Path, gold: Path | None, id_column: str | None,
                      tasks_text: str | None) -> None:
    """Fit a per-head temperature for the confidence columns on an annotated DEV file with gold.

    Only the chosen answer's probability is stored, so the temperature is fitted on "the answer is right"
    (binary NLL over logit(confidence) / T); see docs/evaluation.md. Judge it on another file:
    `radbatch eval TEST --calibration FILE`.
    """
    tasks = _tasks(tasks_text)
    from radbatch.evaluation.api import calibrate

    with writing():
        fitted = calibrate(dev, output, gold, id_column, tasks)
    for task, t in fitted.items():
        click.echo(f"{task:<24} temperature {t.temperature:.3f}  NLL {t.nll_before:.3f} -> {t.nll_after:.3f}  "
                   f"({t.items} items)")
    click.echo(f"Wrote {output}")


if __name__ == "__main__":   # python -m radbatch.cli.evaluate: the same policy as `radbatch eval`
    handle_errors(eval_command.main)()
