"""`radbatch sample`: write a synthetic labelled report archive.

Importing this module imports Click only; the generator (and pyarrow) load when the command runs. Errors follow
the command group's one policy (radbatch/cli/policy.py): an output that cannot be written is exit 4.
"""

from __future__ import annotations

from pathlib import Path

import click

from .policy import writing


@click.command("sample")
@click.option("-n", "--rows", type=int, required=True, help="Number of reports to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Output file, .parquet or .csv.",
)
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default=None, help="Overrides the output suffix.")
@click.option(
    "--split",
    type=click.Choice(["train", "dev", "test", "all"]),
    default="all",
    show_default=True,
    help="Write only this split's patients (about 80/10/10); 'all' writes every patient.",
)
@click.option("--gold/--no-gold", default=True, show_default=True, help="Add gold__<task>__<field> columns.")
@click.option("--messy", is_flag=True, help="Add what real exports contain: missing text, duplicates, very long reports, ...")
@click.option("--workers", type=int, default=None, help="Processes to generate with (default: all cores for large archives).")
def sample(rows: int, seed: int, output: Path, fmt: str | None, split: str, gold: bool, messy: bool, workers: int | None) -> None:
    """Write ROWS synthetic radiology reports with gold labels for the nine task heads."""
    if rows < 1:
        raise click.UsageError(f"--rows must be at least 1, got {rows}.")
    if workers is not None and workers < 1:
        raise click.UsageError(f"--workers must be at least 1, got {workers}.")
    from radbatch.sample.archive import SampleOptions, output_format, write_archive

    options = SampleOptions(
        rows=rows, output=output, seed=seed, format=fmt, split=split, gold=gold, messy=messy, workers=workers
    )
    try:
        output_format(options)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    with writing(output):
        summary = write_archive(options)
    click.echo(f"wrote {summary.rows} reports ({summary.columns} columns, split={split}, seed={seed}) to {summary.path}")
