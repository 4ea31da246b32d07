"""The LoRA training loop on CPU: task-weighted batches, loss on answer tokens only, checkpoints, resume.

Reads top to bottom: seed -> LoRA model -> optimizer and schedule -> resume -> steps -> dev loss -> adapter.
Deterministic for a seed: the samples of step s are drawn from a generator seeded with (seed, s), and a
checkpoint holds the optimizer, schedule and torch RNG state, so an interrupted run resumed from its last
checkpoint ends with the same adapter as an uninterrupted one.
The log (train_log.jsonl, the progress bar) holds step numbers, losses and timings, never report text.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from radbatch.errors import InputError, StorageError

from .data import Dataset, Sample, class_balanced_weights
from .recipe import FinetuneRecipe

KEEP_CHECKPOINTS = 2


class Interrupted(Exception):
    def __init__(self, step: int, out_dir: Path):
        self.step, self.out_dir = step, out_dir
        super().__init__(f"interrupted after step {step}; checkpoint saved in {out_dir}/checkpoints")


@dataclass(frozen=True)
class TrainOptions:
    out_dir: Path
    threads: int | None = None
    max_steps: int | None = None     # the schedule's length (default: the recipe's max_steps)
    stop_after: int | None = None    # checkpoint and stop after this step; rerun to resume
    quiet: bool = False
    on_checkpoint: Callable[["TrainResult"], None] | None = None   # after each checkpoint (run.json stays current)


@dataclass
class TrainResult:
    step: int
    max_steps: int
    finished: bool
    train_loss: list[tuple[int, float]]
    dev_loss: list[tuple[int, float, dict]]
    wall_s: float
    peft_dir: Path | None


def train(model, data: Dataset, recipe: FinetuneRecipe, opts: TrainOptions, pad_id: int) -> TrainResult:
    """Train (or resume) into opts.out_dir, which claim_output() has checked belongs to this run."""
    import torch
    from peft import (
        LoraConfig,
        get_peft_model,
        get_peft_model_state_dict,
        set_peft_model_state_dict,
    )
    from transformers import get_scheduler

    out = Path(opts.out_dir)
    max_steps = opts.max_steps or recipe.max_steps
    if opts.threads:
        torch.set_num_threads(opts.threads)

    # The model: LoRA on the recipe's projections, initialised from the seed.
    torch.manual_seed(recipe.seed)
    layers = list(recipe.layers_to_transform) if recipe.layers_to_transform else None
    n_layers = getattr(model.config, "num_hidden_layers", None)
    if layers and n_layers is not None and max(layers) >= n_layers:
        raise InputError(f"recipe {recipe.name}: layers_to_transform names layer {max(layers)}, but the base model "
                         f"has {n_layers} layers (0..{n_layers - 1})")
    lora = LoraConfig(r=recipe.r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
                      target_modules=list(recipe.target_modules), layers_to_transform=layers, task_type="CAUSAL_LM")
    missing = [m for m in recipe.target_modules if not any(n.endswith("." + m) for n, _ in model.named_modules())]
    if missing:
        raise InputError(f"recipe {recipe.name}: target_modules {missing} are not modules of this base model")
    model = get_peft_model(model, lora)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.learning_rate, weight_decay=0.0)
    scheduler = get_scheduler(recipe.lr_scheduler, optimizer, num_warmup_steps=recipe.warmup_steps,
                              num_training_steps=max_steps)

    # Resume from the newest checkpoint of this run, if any; else a warm start from the recipe's init_adapter.
    step, train_loss, dev_loss, wall = 0, [], [], 0.0
    ckpt = _latest_checkpoint(out)
    if ckpt is not None:
        state = torch.load(ckpt, weights_only=False)
        set_peft_model_state_dict(model, state["adapter"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        step, train_loss, dev_loss, wall = state["step"], state["train_loss"], state["dev_loss"], state["wall_s"]
    elif recipe.init_adapter:
        _warm_start(model, recipe)

    weights = class_balanced_weights(data.train, dict(recipe.task_weights), recipe.class_balance)
    if weights.sum() <= 0:
        raise InputError(f"recipe {recipe.name}: every task with training samples has task weight 0")
    probs = weights / weights.sum()
    dev = data.dev if data.fixed_dev is not None else _dev_subset(data.dev, recipe.dev_max_samples)
    autocast = recipe.compute_dtype == "bfloat16"

    def save(step_done: int) -> None:
        state = {"step": step_done, "adapter": get_peft_model_state_dict(model), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                 "train_loss": train_loss, "dev_loss": dev_loss, "wall_s": wall + time.time() - started}
        _save_checkpoint(out, step_done, state)

    # The steps.
    from tqdm import tqdm
    last = min(max_steps, opts.stop_after or max_steps)
    bar = tqdm(total=max_steps, initial=step, desc="finetune", unit="step", disable=opts.quiet,
               dynamic_ncols=True, smoothing=0.05)
    started, saved_at = time.time(), step
    log = (out / "train_log.jsonl").open("a")

    def evaluate(at: int) -> None:
        mean, per_task = dev_loss_of(model, dev, pad_id, autocast)
        dev_loss.append((at, mean, per_task))
        log.write(json.dumps({"step": at, "dev_loss": round(mean, 5),
                              "dev_loss_by_task": {t: round(v, 5) for t, v in per_task.items()}}) + "\n")
        log.flush()
        bar.write(f"step {at}: dev loss {mean:.4f} ({len(dev)} held-out samples)")
        model.train()

    try:
        if step == 0 and dev and not dev_loss:
            evaluate(0)          # the base model: where the learning curve starts
        model.train()
        while step < last:
            rng = np.random.default_rng([recipe.seed, step])
            picks = rng.choice(len(data.train), size=recipe.batch_size * recipe.grad_accum, p=probs)
            total = 0.0
            for k in range(recipe.grad_accum):
                batch = collate([data.train[i] for i in picks[k * recipe.batch_size:(k + 1) * recipe.batch_size]],
                                pad_id)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    loss = answer_nll(model, batch).mean() / recipe.grad_accum
                loss.backward()
                total += loss.item()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            train_loss.append((step, total))
            elapsed = wall + time.time() - started
            log.write(json.dumps({"step": step, "loss": round(total, 5), "lr": scheduler.get_last_lr()[0],
                                  "elapsed_s": round(elapsed, 2)}) + "\n")
            log.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{total:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            if step % recipe.checkpoint_every == 0 or step == max_steps:
                if dev and (step % (recipe.dev_every or recipe.checkpoint_every) == 0 or step == max_steps):
                    evaluate(step)
                save(step)
                saved_at = step
                if opts.on_checkpoint is not None:
                    opts.on_checkpoint(TrainResult(step, max_steps, False, train_loss, dev_loss,
                                                   wall + time.time() - started, None))
    except KeyboardInterrupt:
        if step > saved_at:
            save(step)
        raise Interrupted(step, out) from None
    finally:
        bar.close()
        log.close()
    if step > saved_at:
        save(step)
    wall += time.time() - started
    peft_dir = None
    if step >= max_steps:
        peft_dir = out / "peft"
        model.save_pretrained(peft_dir)
    return TrainResult(step, max_steps, step >= max_steps, train_loss, dev_loss, wall, peft_dir)


def _warm_start(model, recipe: FinetuneRecipe) -> None:
    """LoRA weights from an earlier run's checkpoint; its keys and shapes must be exactly this model's."""
    import torch
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    weights = torch.load(recipe.init_adapter, weights_only=False, map_location="cpu").get("adapter")
    want = get_peft_model_state_dict(model)
    if not isinstance(weights, dict):
        raise InputError(f"recipe {recipe.name}: init_adapter {recipe.init_adapter} is not a radbatch finetune "
                         "checkpoint (no 'adapter' weights in it)")
    missing, extra = sorted(set(want) - set(weights)), sorted(set(weights) - set(want))
    shapes = sorted(k for k in set(want) & set(weights) if tuple(want[k].shape) != tuple(weights[k].shape))
    if missing or extra or shapes:
        raise InputError(f"recipe {recipe.name}: init_adapter {recipe.init_adapter} does not fit this recipe's LoRA "
                         f"(r, target_modules, layers_to_transform): {len(missing)} weights missing, {len(extra)} "
                         f"unexpected, {len(shapes)} of another shape; first: {(missing + extra + shapes)[0]}")
    set_peft_model_state_dict(model, weights)


def flatten_check(dev_loss: list, fraction: float = 0.25, threshold: float = 0.02) -> dict:
    """Has the dev loss flattened? Its relative drop over the last `fraction` of the steps so far, from the dev
    evaluation at or before that point to the last one; flattened when the drop is under `threshold`. Overall and
    per head. dev_loss: [(step, mean, {head: loss})] as train() records it."""
    if len(dev_loss) < 2 or dev_loss[-1][0] <= 0:
        return {"checked": False, "why": "fewer than two dev evaluations"}
    last_step = dev_loss[-1][0]
    start_at = last_step * (1 - fraction)
    before = [d for d in dev_loss if d[0] <= start_at]
    if not before:
        return {"checked": False, "why": "no dev evaluation before the last quarter"}
    a, b = before[-1], dev_loss[-1]

    def drop(x: float, y: float) -> float | None:
        return round((x - y) / x, 4) if x > 0 else None

    heads = {}
    for head in sorted(set(a[2]) & set(b[2])):
        d = drop(a[2][head], b[2][head])
        heads[head] = {"from": round(a[2][head], 5), "to": round(b[2][head], 5), "drop": d,
                       "flattened": d is not None and d < threshold}
    d = drop(a[1], b[1])
    return {"checked": True, "window": [a[0], b[0]], "threshold": threshold, "from": round(a[1], 5),
            "to": round(b[1], 5), "drop": d, "flattened": d is not None and d < threshold, "by_head": heads}


def collate(samples: list[Sample], pad_id: int) -> dict:
    """Right-padded batch; labels are -100 on prompt and padding, so the loss covers answer tokens only."""
    import torch
    width = max(len(s.ids) for s in samples)
    ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(samples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(samples), width), dtype=torch.long)
    for i, s in enumerate(samples):
        n = len(s.ids)
        ids[i, :n] = torch.from_numpy(s.ids.astype(np.int64))
        labels[i, s.n_prompt:n] = ids[i, s.n_prompt:n]
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def answer_nll(model, batch: dict):
    """Per-token negative log-likelihood of the answer tokens only.

    The output layer runs on answer positions alone: with a 49k vocabulary it would otherwise cost as much as
    the rest of a 135M model, for prompt positions whose loss is thrown away."""
    import torch
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = base.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
    target = batch["labels"][:, 1:]
    keep = target != -100
    logits = base.get_output_embeddings()(hidden[:, :-1][keep]).float()
    return torch.nn.functional.cross_entropy(logits, target[keep], reduction="none")


def dev_loss_of(model, dev: list[Sample], pad_id: int, autocast: bool, batch: int = 8) -> tuple[float, dict]:
    """Mean loss per answer token over the held-out samples, overall and per task. Batched in length order, so
    that a batch pads little (a forward pass costs every padded position)."""
    import torch
    model.eval()
    sums, counts = {}, {}
    ordered = sorted(dev, key=lambda s: len(s.ids))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        for i in range(0, len(ordered), batch):
            chunk = ordered[i:i + batch]
            b = collate(chunk, pad_id)
            nll = answer_nll(model, b)
            per_row = (b["labels"][:, 1:] != -100).sum(dim=1).tolist()
            for s, part in zip(chunk, torch.split(nll, per_row)):
                sums[s.task] = sums.get(s.task, 0.0) + float(part.sum())
                counts[s.task] = counts.get(s.task, 0) + len(part)
    per_task = {t: sums[t] / counts[t] for t in sorted(sums)}
    return sum(sums.values()) / max(1, sum(counts.values())), per_task


def _dev_subset(dev: list[Sample], limit: int) -> list[Sample]:
    """At most `limit` held-out samples, taken round-robin across tasks so every head is represented."""
    by_task: dict[str, list[Sample]] = {}
    for s in dev:
        by_task.setdefault(s.task, []).append(s)
    out, i = [], 0
    while len(out) < min(limit, len(dev)):
        for task in sorted(by_task):
            if i < len(by_task[task]) and len(out) < limit:
                out.append(by_task[task][i])
        i += 1
    return out


def claim_output(out: Path, fingerprint: dict, restart: bool) -> None:
    """The output folder belongs to one run (base, recipe, data, schedule): resume it, or refuse to mix runs."""
    import shutil
    meta = out / "run.json"
    if restart:
        for name in ("checkpoints", "peft", "train_log.jsonl", "run.json"):
            p = out / name
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    if meta.exists():
        old = json.loads(meta.read_text()).get("fingerprint", {})
        differs = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
        if differs:
            raise InputError(f"{out} holds a finetune run with different {', '.join(differs)}. Rerun with the "
                             "same settings to resume it, pass --restart to discard it, or choose another -o.")
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(meta, {"fingerprint": fingerprint})
    except OSError as exc:  # a storage error (exit 4) naming the folder, not a bug
        raise StorageError(f"cannot create the finetune output folder {out}: {exc.strerror or type(exc).__name__}. "
                           "Choose a writable -o.") from None


def _latest_checkpoint(out: Path) -> Path | None:
    found = sorted((out / "checkpoints").glob("step-*.pt"))
    return found[-1] if found else None


def _save_checkpoint(out: Path, step: int, state: dict) -> None:
    import torch
    folder = out / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".step-{step:07d}.pt.tmp"
    torch.save(state, tmp)
    os.replace(tmp, folder / f"step-{step:07d}.pt")
    for old in sorted(folder.glob("step-*.pt"))[:-KEEP_CHECKPOINTS]:
        old.unlink()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)
