"""Seconds per training step of candidate recipes, measured on the real data and base (finetune/embedded_v3.sh):

    bench/exclusive .venv/bin/python finetune/bench_steps.py TRAIN.parquet [more archives] \\
        --recipe recipes/finetune/smollm2_135m_lora_v3.toml --steps 6 --threads 2 \\
        --variant top10-r8:layers=20-29,r=8 --variant all30-r8:layers=0-29,r=8 ... <column options>

Builds the samples once (the recipe's max_length and class balance), then for each variant trains `--steps` steps
of the real loop (radbatch/finetune/train.train, batch as in the recipe) from a fresh base model into a scratch
folder and prints the mean step time over steps 2..N (step 1 warms up). With --dev-archive it also times one
dev-loss evaluation of the fixed dev set (what each checkpoint adds). Prints numbers only, never report text.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from radbatch.archive.reading import ColumnOptions
from radbatch.finetune.base import hf_folder, load_model, load_tokenizer, resolve_base
from radbatch.finetune.data import DataOptions, PromptTokenizer, build_dataset
from radbatch.finetune.recipe import load_finetune_recipe
from radbatch.finetune.train import TrainOptions, dev_loss_of, train
from radbatch.heads.recipes import load_recipes


def variant(spec: str, recipe):
    name, _, rest = spec.partition(":")
    changes = {}
    for part in filter(None, rest.split(",")):
        key, _, val = part.partition("=")
        if key == "layers":
            lo, _, hi = val.partition("-")
            changes["layers_to_transform"] = tuple(range(int(lo), int(hi or lo) + 1))
        elif key in ("r", "lora_alpha", "max_length", "batch_size", "grad_accum"):
            changes[key] = int(val)
    if "r" in changes and "lora_alpha" not in changes:
        changes["lora_alpha"] = 2 * changes["r"]
    return name, dataclasses.replace(recipe, **changes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("labelled", nargs="+")
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--variant", action="append", required=True, help="name:layers=20-29,r=8[,max_length=N]")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dev-archive", action="append", default=[])
    for name in ("text", "findings", "impression", "patient", "date", "modality", "question", "hypothesis"):
        ap.add_argument(f"--{name}-column", default="report_text" if name == "text" else None)
    args = ap.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    recipes = load_recipes()
    recipe = load_finetune_recipe(Path(args.recipe), set(recipes.tasks))
    base = resolve_base("embedded")
    folder = hf_folder(base)
    ptok = PromptTokenizer(load_tokenizer(folder))
    cols = ColumnOptions(text=args.text_column, findings=args.findings_column, impression=args.impression_column,
                         patient=args.patient_column, date=args.date_column, modality=args.modality_column,
                         question=args.question_column, hypothesis=args.hypothesis_column)
    variants = [variant(v, recipe) for v in args.variant]
    cache: dict[int, object] = {}
    for name, rec in variants:
        if rec.max_length not in cache:
            cache[rec.max_length] = build_dataset(DataOptions(tuple(args.labelled), cols), recipes, base.spec, ptok,
                                                  rec.max_length, 0.0, rec.seed, tuple(args.dev_archive),
                                                  max(rec.dev_per_head, 1))
        data = cache[rec.max_length]
        dev = data.dev
        data.dev = []                      # no dev evaluation inside the timed steps
        with tempfile.TemporaryDirectory(prefix="radbatch-bench-") as tmp:
            model = load_model(folder)
            train(model, data, rec, TrainOptions(Path(tmp), args.threads, stop_after=args.steps, quiet=True), ptok.end_id)
            log = [json.loads(line) for line in (Path(tmp) / "train_log.jsonl").read_text().splitlines()]
        data.dev = dev
        el = [x["elapsed_s"] for x in log if "elapsed_s" in x]
        per_step = (el[-1] - el[0]) / (len(el) - 1)
        print(json.dumps({"variant": name, "layers": f"{min(rec.layers_to_transform or [0])}-"
                          f"{max(rec.layers_to_transform or [29])}", "r": rec.r, "max_length": rec.max_length,
                          "batch": rec.batch_size, "grad_accum": rec.grad_accum, "s_per_step": round(per_step, 2), "first_step_s": el[0]}),
              flush=True)
    if args.dev_archive:
        data = cache[variants[0][1].max_length]
        model = load_model(folder)
        t = time.time()
        dev_loss_of(model, data.dev, ptok.end_id, False)
        print(json.dumps({"dev_eval_samples": len(data.dev), "dev_eval_s": round(time.time() - t, 1)}), flush=True)


if __name__ == "__main__":
    main()
