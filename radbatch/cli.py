"""The `radbatch` command: parse options, call one library function, turn errors into messages and exit codes.

Exit codes: 0 finished (row errors are data), 1 row errors with --fail-on-row-errors, 2 usage or input error,
3 model or engine error, 4 storage error, 70 unexpected internal error (a bug), 130 interrupted.

No traceback, ever: an exception radbatch did not expect ends with one line naming its type, where in radbatch it
was raised and what the run was working on (an input file, a work unit, an output), never the exception's
message, which may quote a report. Every file the commands create is owner-only (umask 077).
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import sys
import traceback

import click

from .errors import RadbatchError

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70   # sysexits' EX_SOFTWARE


def _raised_at(exc: BaseException) -> str:
    """'radbatch/finalize.py:120' for the innermost radbatch frame of the traceback (no values, no message)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "/radbatch/" in f.filename.replace(os.sep, "/")]
    if not frames:
        return "outside radbatch"
    name = frames[-1].filename.replace(os.sep, "/").rsplit("/radbatch/", 1)[1]
    return f"at radbatch/{name}:{frames[-1].lineno}"


def report_unexpected(exc: BaseException):
    """One line for an exception radbatch did not expect, then exit 70: its type, where it was raised and what
    the run was working on. Never str(exc): an exception's arguments may quote a report."""
    from .errors import activity
    kind = type(exc).__name__
    if isinstance(exc, OSError) and exc.errno in errno.errorcode:
        kind += f" ({errno.errorcode[exc.errno]})"
    click.echo(f"Error: unexpected {kind} {_raised_at(exc)} while working on {activity()}. This is a radbatch "
               "bug, not a problem with your reports: please report this line (it holds no report text). "
               "Finished parts are kept; rerun the same command to resume.", err=True)
    sys.exit(EXIT_INTERNAL)


def handle_errors(fn):
    """Library errors become one clear message and their exit code, never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except RadbatchError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:  # Ctrl-C outside the work loop (planning, model hashing, finalize)
            click.echo("\nInterrupted. Rerun the same command to resume.", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as exc:  # a bug: one line, never a traceback or the exception's text
            report_unexpected(exc)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="radbatch")
def cli() -> None:
    """Annotate radiology report archives with small fine-tuned LLMs on CPUs."""
    os.umask(0o077)  # outputs, parts, priors, temp files hold report text: owner-only whatever the user's umask


def input_options(fn):
    opts = [
        click.option("--id-column", default="report_id", show_default=True, help="Report id column (data, not identity)."),
        click.option("--text-column", default="report_text", show_default=True, help="Full report text column."),
        click.option("--findings-column", help="Findings section column (else the sectionizer splits the text)."),
        click.option("--impression-column", help="Impression section column."),
        click.option("--patient-column", help="Patient id column (temporal head: prior report by date)."),
        click.option("--date-column", help="Study date column (temporal head)."),
        click.option("--modality-column", help="Modality column (prior must share the modality)."),
        click.option("--question-column", help="Question column for the QA head."),
        click.option("--hypothesis-column", help="Hypothesis column for NLI (default: the impression)."),
        click.option("--encoding", default="utf-8", show_default=True, help="CSV encoding, e.g. cp1252."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def engine_options(fn):
    opts = [
        click.option("--workers", type=click.IntRange(1), help="Worker processes (default: cores / threads)."),
        click.option("--threads", type=click.IntRange(1), help="llama.cpp threads per worker (default 2)."),
        click.option("--model", help="Send every head to this model (a name in the models file or a .gguf path)."),
        click.option("--models-file", type=click.Path(dir_okay=False), help="Models file (default recipes/models.toml)."),
        click.option("--routing-file", type=click.Path(dir_okay=False), help="Routing file (default recipes/routing.toml)."),
        click.option("--adapter", type=click.Path(dir_okay=False), help="LoRA adapter GGUF for the routed model(s)."),
        click.option("--engine", type=click.Choice(["batched", "simple"]), default="batched", show_default=True,
                     help="batched: shared report prefixes prefilled once, many heads decoded together "
                          "(docs/performance.md); simple: one head at a time, the reference and fallback."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


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
@click.option("--s3-endpoint", help="S3-compatible store for s3:// inputs and -o, e.g. http://127.0.0.1:9000 "
              "(default: AWS_ENDPOINT_URL; credentials from the AWS environment variables or ~/.aws).")
@click.option("--restart", is_flag=True, help="Discard a previous run's output and start over.")
@click.option("--retry-errors", is_flag=True, help="Recompute only the rows whose heads errored.")
@click.option("--fail-on-row-errors", is_flag=True, help="Exit 1 when any head errored or was truncated.")
@click.option("--chexpert-numeric", is_flag=True, help="Also write CheXpert 1/0/-1/blank columns.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@handle_errors
def annotate(inputs, output, **options):
    """Annotate report archives (Parquet/CSV files, directories, globs) with the task heads."""
    from .api import annotate as run
    from .pipeline import Interrupted
    from .report import print_start, print_summary

    if options["ray_address"] and options["executor"] != "ray":
        raise click.UsageError("--ray-address needs --executor ray")
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file-size limit becomes an OSError, not a kill
    summaries = []
    try:  # the Python API's annotate; Click's parameter names are its option names
        run(list(inputs), output, on_start=None if options["quiet"] else print_start,
            on_summary=summaries.append, **options)
    except Interrupted as exc:
        click.echo(f"\nInterrupted: {exc.saved_rows} newly annotated rows are saved in {exc.work_dir}. "
                   "Rerun the same command to resume.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    summary = summaries[0]
    print_summary(summary)
    if options["fail_on_row_errors"] and summary.row_errors:
        sys.exit(1)


@cli.command()
@handle_errors
def tasks():
    """List the task heads, their inputs and output columns."""
    from .recipes import load_recipes
    from .tasks import HeadInstance
    from .plan import select_tasks
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
@handle_errors
def models(models_file, no_hash):
    """List configured models: path, size, sha256, licence, chat template, heads served."""
    from pathlib import Path
    from .models import load_models, materialise, sha256_file
    from .recipes import load_recipes
    from .router import load_routing
    recipes = load_recipes()
    path = Path(models_file) if models_file else recipes.root / "models.toml"
    specs = load_models(path, set(recipes.profiles))
    routing = load_routing(recipes.root / "routing.toml", set(recipes.tasks), set(specs)) \
        if not models_file else None
    for name, spec in specs.items():
        if spec.is_rules:
            _echo_rules_model(name, spec, routing, no_hash)
            continue
        spec = materialise(spec)
        p = Path(spec.path)
        click.echo(f"{name}: {spec.description}")
        click.echo(f"  path: {p}")
        if p.exists():
            click.echo(f"  size: {p.stat().st_size / 2**20:.1f} MiB")
            if not no_hash:
                click.echo(f"  sha256: {sha256_file(str(p))}")
        else:
            click.echo("  size: MISSING FILE")
        if spec.adapter:
            click.echo(f"  adapter: {spec.adapter}")
        click.echo(f"  licence: {spec.licence}; chat template: {spec.chat_template}; profile: {spec.profile}; "
                   f"context: {spec.context_size}")
        if routing:
            served = [t for t, m in routing.routes.items() if m == name]
            click.echo(f"  heads ({routing.status}): {', '.join(served) or 'none'}")


def _echo_rules_model(name, spec, routing, no_hash) -> None:
    """A rules member: its source folder, the sha256 of its source files, the heads it can serve."""
    from .rules import HEADS, source_files, source_sha256
    click.echo(f"{name}: {spec.description}")
    click.echo(f"  kind: rules (deterministic, no model file; {len(source_files())} source files in {spec.path})")
    if not no_hash:
        click.echo(f"  sha256: {source_sha256()} (source files)")
    click.echo(f"  licence: {spec.licence}; profile: {spec.profile}; can serve: {', '.join(HEADS)}")
    if routing:
        served = [t for t, m in routing.routes.items() if m == name]
        click.echo(f"  heads ({routing.status}): {', '.join(served) or 'none'}")


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
@handle_errors
def route(dev, models_file, output, candidates, work_dir, limit, tasks, id_column, text_column, findings_column,
          impression_column, patient_column, date_column, modality_column, question_column, hypothesis_column,
          encoding, workers, threads):
    """Choose each head's model by dev-set scores and write a routing file."""
    from pathlib import Path
    from .archive import ColumnOptions
    from .plan import AnnotateOptions
    from .route import route as run_route, write_routing
    cols = ColumnOptions(id_column, text_column, findings_column, impression_column, patient_column,
                         date_column, modality_column, question_column, hypothesis_column)
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    base = AnnotateOptions(tuple(dev), "", tasks, cols, (), encoding, limit, workers=workers, threads=threads,
                           quiet=True)
    names = [c.strip() for c in candidates.split(",")] if candidates else None
    choices = run_route(base, Path(models_file), Path(work_dir), names)
    write_routing(choices, Path(output), dev[0])
    for c in choices:
        score = "no dev gold" if c.score is None else f"{c.metric} {c.score:.3f} (n={c.n})"
        other = f"; runner-up {c.runner_up} {c.runner_up_score:.3f}" if c.runner_up else ""
        click.echo(f"{c.task:<24} -> {c.model:<16} {score}{other}")
    click.echo(f"Wrote {output}")


@cli.group()
def recipes():
    """Recipe tools."""


@recipes.command("validate")
@click.argument("root", required=False, type=click.Path(file_okay=False, exists=True))
@handle_errors
def recipes_validate(root):
    """Validate every recipe under recipes/ (tasks, profiles, models, routing, finetune)."""
    from .validate import validate_all
    checked = validate_all(root)
    click.echo(f"OK: {len(checked)} recipe files valid")


def _register_optional() -> None:
    """Commands owned by other modules, registered lazily so `import radbatch.cli` stays light."""
    from .evaluation.command import eval_command
    from .sample.command import sample
    cli.add_command(sample)
    cli.add_command(eval_command, name="eval")
    from .evaluation.command import calibrate_command
    from .review.command import review, review_import
    cli.add_command(calibrate_command, name="calibrate")
    cli.add_command(review)
    cli.add_command(review_import)
    from .finetune_command import finetune  # click only; torch loads when the command runs
    cli.add_command(finetune)


_register_optional()


def main() -> None:
    try:
        cli()
    except Exception as exc:  # commands without handle_errors (eval, sample): the same one-line policy
        report_unexpected(exc)
