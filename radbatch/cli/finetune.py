"""The `radbatch finetune` command: parse options, call finetune_run.finetune(), print the result.

Errors and interrupts follow the command group's one policy (cli_errors.py).

Only click is imported here; torch / transformers / peft load when the command runs.
"""

from __future__ import annotations

import signal

import click

from .options import input_options
from .policy import Interrupted


@click.command("finetune")
@click.argument("labelled", nargs=-1, required=True)
@click.option("--base", default="embedded", show_default=True,
              help="Base model: 'embedded', a name in the models file, a .gguf (llama/qwen2/qwen3) or a Hugging "
                   "Face model folder.")
@click.option("--recipe", required=True, type=click.Path(dir_okay=False, exists=True),
              help="Finetune recipe, e.g. recipes/finetune/smollm2_135m_lora.toml.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Output folder (adapter.gguf, run.json, checkpoints/). Rerun the same command to resume.")
@click.option("--tasks", help="Comma-separated heads to train (default: every head with gold columns).")
@click.option("--models-file", type=click.Path(dir_okay=False), help="Models file for --base NAME.")
@click.option("--seed", type=int, help="Override the recipe's seed (ensemble members).")
@click.option("--threads", type=click.IntRange(1), help="torch threads (default: all cores).")
@click.option("--max-steps", type=click.IntRange(1), help="Train this many steps (the schedule's length).")
@click.option("--stop-after", type=click.IntRange(1), help="Checkpoint and stop after this step; rerun to resume.")
@click.option("--merged", metavar="QUANT",
              help="Also write base + adapter merged as one GGUF: q4_k_m, q4_1, q8_0, f16, ...")
@click.option("--dev-archive", "dev_archives", multiple=True, type=click.Path(exists=True),
              help="Labelled dev archive (repeatable): the fixed dev-loss set, the recipe's dev_per_head examples of "
                   "each head (the same for every run; heads of later archives are logged as task@<file stem>).")
@click.option("--restart", is_flag=True, help="Discard the output folder's previous run and start over.")
@input_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def finetune(labelled, base, recipe, output, tasks, models_file, seed, threads, max_steps, stop_after, merged,
             dev_archives, restart, columns, encoding, quiet):
    """Train a LoRA adapter on LABELLED archives (gold__<task>__<field> columns, as `radbatch sample` writes).

    Pass the same column options you will pass to annotate (--question-column, --hypothesis-column,
    --patient-column, --date-column, ...): prompts are rendered exactly as annotate renders them.
    """
    from radbatch.finetune.data import DataOptions
    from radbatch.finetune.run import FinetuneOptions
    from radbatch.finetune.run import finetune as run
    from radbatch.finetune.train import Interrupted as TrainInterrupted

    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)   # `kill` checkpoints like Ctrl-C
    opts = FinetuneOptions(data=DataOptions(inputs=tuple(labelled), columns=columns, encoding=encoding, tasks=tasks),
                           recipe=recipe, output=output, base=base, models_file=models_file, seed=seed,
                           threads=threads, max_steps=max_steps, stop_after=stop_after, restart=restart,
                           merged=merged, quiet=quiet, dev_inputs=tuple(dev_archives))
    try:
        summary = run(opts, echo=lambda line: click.echo(line, err=True))
    except TrainInterrupted as exc:
        raise Interrupted(f"Interrupted after step {exc.step}; the checkpoint is in {exc.out_dir}/checkpoints. "
                          "Rerun the same command to resume.") from None
    dev = f"; dev loss {summary.dev_loss:.4f}" if summary.dev_loss is not None else ""
    if not summary.finished:
        click.echo(f"Stopped after step {summary.step} of {summary.max_steps}{dev}. Rerun the same command "
                   f"without --stop-after to continue.")
        return
    click.echo(f"Trained {summary.step} steps in {summary.wall_s / 60:.1f} min{dev}. Adapter: {summary.adapter}")
    click.echo(f"Use it: radbatch annotate REPORTS -o OUT.parquet --adapter {summary.adapter}")
