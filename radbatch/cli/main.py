"""The `radbatch` command: parse options, call one library function, print the result.

Every command runs under one error-to-exit-code policy, applied by the group (cli_errors.py): 0 finished (row
errors are data), 1 row errors with --fail-on-row-errors, 2 usage or input error, 3 model or engine error,
4 storage error, 70 unexpected internal error (a bug), 130 interrupted. Shared options are cli_options.py.

No traceback, ever: an exception radbatch did not expect ends with one line naming its type, where in radbatch it
was raised and what the run was working on (an input file, a work unit, an output), never the exception's
message, which may quote a report. Every file the commands create is owner-only (umask 077).
"""

from __future__ import annotations

import os
import signal
import sys

import click

from .options import engine_options, input_options
from .policy import (
    EXIT_ROW_ERRORS,
    Interrupted,
    PolicyGroup,
    report_unexpected,
    writing,
)


@click.group(cls=PolicyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="radbatch")
def cli() -> None:
    """Annotate radiology report archives with small fine-tuned LLMs on CPUs."""
    os.umask(0o077)  # outputs, parts, priors, temp files hold report text: owner-only whatever the user's umask


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="Output .parquet file, a directory ending in '/', or an "
              "s3://bucket/key.parquet object.")
@click.option("--tasks", help="Comma-separated heads (default all nine; 'none' for no heads).")
@click.option("--question", "questions", multiple=True, help="A question for the QA head (repeatable).")
@click.option("--limit", type=click.IntRange(1), help="Annotate only the first N rows (a pilot run).")
@click.option("--keep-columns", help="Comma-separated input columns to keep (default all).")
@input_options
@engine_options
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where units run: local worker processes, or Ray actors (--workers/--threads per node).")
@click.option("--ray-address", help="Ray cluster for --executor ray: 'auto' or head:6379 "
              "(default: RAY_ADDRESS, else a Ray started for this run).")
@click.option("--cache", type=click.Path(file_okay=False), help="Result store folder shared by runs: reruns decode "
              "only rows/heads not seen (off by default: it keeps generated text; docs/reliability.md).")
@click.option("--s3-endpoint", help="S3-compatible store for s3:// inputs and -o, e.g. http://127.0.0.1:9000 "
              "(default: AWS_ENDPOINT_URL; credentials from the AWS environment variables or ~/.aws).")
@click.option("--restart", is_flag=True, help="Discard a previous run's output and start over.")
@click.option("--retry-errors", is_flag=True, help="Recompute only the rows whose heads errored.")
@click.option("--fail-on-row-errors", is_flag=True, help="Exit 1 when any head errored or was truncated.")
@click.option("--chexpert-numeric", is_flag=True, help="Also write CheXpert 1/0/-1/blank columns.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def annotate(inputs, output, **options):
    """Annotate report archives (Parquet/CSV files, directories, globs) with the task heads."""
    from radbatch.annotation.pipeline import Interrupted as RunInterrupted
    from radbatch.annotation.report import print_start, print_summary
    from radbatch.api import annotate as run

    if options["ray_address"] and options["executor"] != "ray":
        raise click.UsageError("--ray-address needs --executor ray")
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file-size limit becomes an OSError, not a kill
    summaries = []
    try:  # the Python API's annotate; Click's parameter names are its option names, columns= a ColumnOptions
        run(list(inputs), output, on_start=None if options["quiet"] else print_start,
            on_summary=summaries.append, **options)
    except RunInterrupted as exc:
        raise _resumable(exc) from None
    summary = summaries[0]
    print_summary(summary)
    if options["fail_on_row_errors"] and summary.row_errors:
        sys.exit(EXIT_ROW_ERRORS)


def _resumable(exc) -> Interrupted:
    """An annotate run stopped by Ctrl-C or SIGTERM (pipeline.Interrupted): what is saved, how to resume."""
    return Interrupted(f"Interrupted: {exc.saved_rows} newly annotated rows are saved in {exc.work_dir}. "
                       "Rerun the same command to resume.")


@cli.command()
def tasks():
    """List the task heads, their inputs and output columns."""
    from radbatch.annotation.plan import select_tasks
    from radbatch.heads.recipes import load_recipes
    from radbatch.heads.tasks import HeadInstance
    recipes = load_recipes()
    for recipe in select_tasks(recipes, None):
        head = HeadInstance(recipe)
        click.echo(f"{recipe.id} (v{recipe.version}): {recipe.description}")
        click.echo(f"  inputs: {', '.join(recipe.inputs)}; max tokens {recipe.max_tokens}")
        for f in head.output_fields():
            click.echo(f"  {f.name}: {f.type}")


@cli.command()
@click.option("--models-file", type=click.Path(dir_okay=False))
@click.option("--no-hash", is_flag=True, help="Skip sha256 (fast).")
def models(models_file, no_hash):
    """List configured models: path, size, sha256, licence, chat template, heads served."""
    from pathlib import Path

    from radbatch.heads.models import list_models
    for entry in list_models(models_file, with_hash=not no_hash):
        spec = entry.spec
        click.echo(f"{entry.name}: {spec.description}")
        if spec.is_rules:
            click.echo(f"  kind: rules (deterministic, no model file; {entry.source_files} source files in "
                       f"{spec.path})")
            if entry.sha256:
                click.echo(f"  sha256: {entry.sha256} (source files)")
            click.echo(f"  licence: {spec.licence}; profile: {spec.profile}; can serve: {', '.join(entry.can_serve)}")
        else:
            click.echo(f"  path: {Path(spec.path)}")
            if entry.size_bytes is None:
                click.echo("  size: MISSING FILE")
            else:
                click.echo(f"  size: {entry.size_bytes / 2**20:.1f} MiB")
                if entry.sha256:
                    click.echo(f"  sha256: {entry.sha256}")
            if spec.adapter:
                click.echo(f"  adapter: {spec.adapter}")
            click.echo(f"  licence: {spec.licence}; chat template: {spec.chat_template}; profile: {spec.profile}; "
                       f"context: {spec.context_size}")
        if entry.heads is not None:
            click.echo(f"  heads ({entry.routing_status}): {', '.join(entry.heads) or 'none'}")


@cli.command()
@click.argument("dev", nargs=-1, required=True)
@click.option("--models", "models_file", required=True, type=click.Path(dir_okay=False, exists=True),
              help="Models file listing the candidates.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="routing.toml to write.")
@click.option("--candidates", help="Comma-separated model names (default: every model in the file).")
@click.option("--work-dir", default="out/route", show_default=True, help="Where the dev annotations go (resumable).")
@click.option("--limit", type=click.IntRange(1), help="Use only the first N dev rows.")
@click.option("--tasks", help="Comma-separated heads to measure (default all).")
@input_options
@click.option("--workers", type=click.IntRange(1))
@click.option("--threads", type=click.IntRange(1))
def route(dev, models_file, output, candidates, work_dir, **base):
    """Choose each head's model by dev-set scores and write a routing file."""
    from pathlib import Path

    from radbatch.api import annotate_options
    from radbatch.route_selection import route as run_route
    from radbatch.route_selection import write_routing
    with writing(work_dir, "Choose a writable --work-dir."):
        Path(work_dir).mkdir(parents=True, exist_ok=True)
    from radbatch.annotation.pipeline import Interrupted as RunInterrupted
    names = [c.strip() for c in candidates.split(",")] if candidates else None
    try:
        choices = run_route(annotate_options(list(dev), "", quiet=True, **base), Path(models_file), Path(work_dir),
                            names)
    except RunInterrupted as exc:   # the dev annotations are resumable like annotate's
        raise _resumable(exc) from None
    with writing(output):
        write_routing(choices, Path(output), dev[0])
    for c in choices:
        score = "no dev gold" if c.score is None else f"{c.metric} {c.score:.3f} (n={c.n})"
        other = f"; runner-up {c.runner_up} {c.runner_up_score:.3f}" if c.runner_up else ""
        click.echo(f"{c.task:<24} -> {c.model:<16} {score}{other}" + (f"\n    {c.note}" if c.note else ""))
    click.echo(f"Wrote {output}")


@cli.group()
def recipes():
    """Recipe tools."""


@recipes.command("validate")
@click.argument("root", required=False, type=click.Path(file_okay=False, exists=True))
def recipes_validate(root):
    """Validate every recipe under recipes/ (tasks, profiles, models, routing, finetune)."""
    from radbatch.heads.validate import validate_all
    checked = validate_all(root)
    click.echo(f"OK: {len(checked)} recipe files valid")


def _register_optional() -> None:
    """Commands owned by other modules, registered lazily so `import radbatch.cli.main` stays light."""
    from .evaluate import eval_command
    from .sample import sample
    cli.add_command(sample)
    cli.add_command(eval_command, name="eval")
    from .evaluate import calibrate_command
    from .review import review, review_import
    cli.add_command(calibrate_command, name="calibrate")
    cli.add_command(review)
    cli.add_command(review_import)
    from .finetune import finetune
    cli.add_command(finetune)
    from .cache import cache
    cli.add_command(cache)


_register_optional()


def main() -> None:
    try:
        cli()
    except Exception as exc:  # outside any command (Click itself): the same one-line policy
        report_unexpected(exc)
