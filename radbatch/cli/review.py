"""`radbatch review` (write a review queue) and `radbatch review-import` (answers -> gold__ columns).

Only click is imported at module level. Errors follow the command group's one policy (radbatch/cli/policy.py):
2 input error, 4 storage error.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("review")
@click.argument("annotated", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--head", "task", required=True, help="The head to review, e.g. m_staging.")
@click.option("--below", type=click.FloatRange(0, 1), help="Queue the rows whose confidence is below this.")
@click.option("--lowest", type=click.IntRange(1), help="Queue the N least confident rows.")
@click.option("-o", "--output", "out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for review.html, review.csv and the Label Studio files (default: review_<head>/).")
@click.option("--text-column", default="report_text", show_default=True, help="Report text column.")
@click.option("--id-column", default="report_id", show_default=True, help="Report id column (shown, not used to join).")
@click.option("--calibration", "calibration_file", type=click.Path(path_type=Path, dir_okay=False),
              help="calibration.toml from `radbatch calibrate`: rank and compare calibrated confidences.")
def review(annotated: Path, task: str, below: float | None, lowest: int | None, out: Path | None,
           text_column: str, id_column: str, calibration_file: Path | None) -> None:
    """Write the rows of ANNOTATED a person should check first, least confident first.

    The files hold report text and are written owner-only (0600). Fill them in (HTML, CSV or Label Studio),
    then `radbatch review-import` turns the answers into gold__ columns for eval and finetune.
    """
    if (below is None) == (lowest is None):
        raise click.UsageError("give exactly one of --below P or --lowest N.")
    from radbatch.review.answers import review_head
    from radbatch.review.export import write_queue
    from radbatch.review.queue import QueueOptions, read_rows, select_items

    head = review_head(task)
    temperature = None
    if calibration_file is not None:
        from radbatch.evaluation.calibration import read_calibration
        from radbatch.evaluation.confidence import CONFIDENCE_TASKS

        temperature = read_calibration(calibration_file, CONFIDENCE_TASKS).get(task)
        if temperature is None:
            raise click.UsageError(f"{calibration_file} has no temperature for {task}.")
    opts = QueueOptions(task, below, lowest, text_column, id_column, temperature)
    items = select_items(read_rows(annotated, head, opts), head, opts, annotated)
    paths = write_queue(out or Path(f"review_{task}"), head, items, annotated)
    click.echo(f"{len(items)} rows queued for {task} (least confident first; files hold report text, mode 0600):")
    for path in paths.values():
        click.echo(f"  {path}")


@click.command("review-import")
@click.argument("answers", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--annotated", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The annotated Parquet file the queue was made from.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Parquet file to write: the reviewed rows with gold__<task>__<field> columns (mode 0600).")
def review_import(answers: tuple[Path, ...], annotated: Path, output: Path) -> None:
    """Read filled review CSVs and/or Label Studio JSON exports (ANSWERS) into gold__ columns.

    The output holds the answered rows of --annotated (report text included) plus their gold, so that
    `radbatch eval OUTPUT` scores the model on them and `radbatch finetune` can train on them.
    """
    from radbatch.review.gold import import_answers

    counts = import_answers(list(answers), annotated, output)
    for task, n in counts.items():
        click.echo(f"{task}: {n} reviewed rows -> gold__{task}__* columns")
    click.echo(f"Wrote {output} (holds report text, mode 0600)")
