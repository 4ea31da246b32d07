"""Option decorators shared by the commands (annotate, route, finetune): each bundle adds its options in the
order `--help` shows them and hands the command the object they describe.

    @input_options      --id-column ... --hypothesis-column, --encoding  -> columns=ColumnOptions(...), encoding=
    @column_options     the column options alone                           -> columns=ColumnOptions(...)
    @engine_options     --workers --threads --model --models-file --routing-file --adapter --engine (by name)

Only click is imported here; ColumnOptions (archive.py, pyarrow) loads when a command runs.
"""

from __future__ import annotations

import functools

import click

# (ColumnOptions field, option, help); the option's parameter is <field>_column.
COLUMNS = (
    ("id", click.option("--id-column", default="report_id", show_default=True,
                        help="Report id column (data, not identity).")),
    ("text", click.option("--text-column", default="report_text", show_default=True,
                          help="Full report text column.")),
    ("findings", click.option("--findings-column", help="Findings section column (else the sectionizer splits the text).")),
    ("impression", click.option("--impression-column", help="Impression section column.")),
    ("patient", click.option("--patient-column", help="Patient id column (temporal head: prior report by date).")),
    ("date", click.option("--date-column", help="Study date column (temporal head).")),
    ("modality", click.option("--modality-column", help="Modality column (prior must share the modality).")),
    ("question", click.option("--question-column", help="Question column for the QA head.")),
    ("hypothesis", click.option("--hypothesis-column", help="Hypothesis column for NLI (default: the impression).")),
)


def _add(fn, options):
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def column_options(fn):
    """The report column options, handed to the command as `columns`, a ColumnOptions."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from radbatch.archive.reading import ColumnOptions
        kwargs["columns"] = ColumnOptions(**{field: kwargs.pop(f"{field}_column") for field, _ in COLUMNS})
        return fn(*args, **kwargs)
    return _add(wrapper, [opt for _, opt in COLUMNS])


def input_options(fn):
    """The column options (as `columns`) and --encoding: how to read an input archive."""
    fn = click.option("--encoding", default="utf-8", show_default=True, help="CSV encoding, e.g. cp1252.")(fn)
    return column_options(fn)


def engine_options(fn):
    """Which model serves which head, and how many workers and threads run it; passed by name."""
    return _add(fn, [
        click.option("--workers", type=click.IntRange(1), help="Worker processes (default: cores / threads)."),
        click.option("--threads", type=click.IntRange(1), help="llama.cpp threads per worker (default 2)."),
        click.option("--model", help="Send every head to this model (a name in the models file or a .gguf path)."),
        click.option("--models-file", type=click.Path(dir_okay=False), help="Models file (default recipes/models.toml)."),
        click.option("--routing-file", type=click.Path(dir_okay=False), help="Routing file (default recipes/routing.toml)."),
        click.option("--adapter", type=click.Path(dir_okay=False), help="LoRA adapter GGUF for the routed model(s)."),
        click.option("--engine", type=click.Choice(["batched", "simple"]), default="batched", show_default=True,
                     help="batched: shared report prefixes prefilled once, many heads decoded together "
                          "(docs/performance.md); simple: one head at a time, the reference and fallback."),
    ])
