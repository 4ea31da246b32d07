"""`radbatch finetune`: labelled archive + base model + recipe -> a LoRA adapter GGUF annotate can load.

Steps: recipe -> base model -> samples (annotate's prompts, gold answers) -> train (resumable) -> export to GGUF
-> verify in llama.cpp -> run.json. The output folder holds:
  adapter.gguf       the LoRA adapter for `radbatch annotate --adapter` (stamped with its base's sha256)
  run.json           what made it: base, recipe, seed, data counts, steps, losses, wall time
  train_log.jsonl    one line per step (loss, lr, elapsed) and per dev evaluation
  checkpoints/       the newest checkpoints; rerunning the same command resumes from them
  peft/              the adapter in peft's format (for transformers, or to re-export)
  merged-<q>.gguf    with --merged: base + adapter merged and quantized
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .data import DataOptions


@dataclass(frozen=True)
class FinetuneOptions:
    data: DataOptions
    recipe: str
    output: str
    base: str = "embedded"
    models_file: str | None = None
    seed: int | None = None          # overrides the recipe's seed
    threads: int | None = None
    max_steps: int | None = None
    stop_after: int | None = None
    restart: bool = False
    merged: str | None = None        # also write a merged GGUF with this quantization (q4_k_m, q8_0, f16, ...)
    quiet: bool = False
    dev_inputs: tuple[str, ...] = ()   # labelled dev archives: the fixed dev-loss set (recipe dev_per_head)


@dataclass
class FinetuneSummary:
    out_dir: Path
    finished: bool
    step: int
    max_steps: int
    adapter: Path | None
    logit_change: float | None
    dev_loss: float | None
    wall_s: float


def finetune(opts: FinetuneOptions, echo: Callable[[str], None] = print) -> FinetuneSummary:
    from radbatch.heads.recipes import load_recipes

    from .base import hf_folder, load_model, load_tokenizer, resolve_base
    from .data import PromptTokenizer, build_dataset, format_counts
    from .recipe import load_finetune_recipe
    from .train import TrainOptions, claim_output, flatten_check, train

    started = time.time()
    out = Path(opts.output)
    recipes = load_recipes()
    recipe = load_finetune_recipe(Path(opts.recipe), set(recipes.tasks))
    if opts.seed is not None:
        recipe = dataclasses.replace(recipe, seed=opts.seed)
    base = resolve_base(opts.base, Path(opts.models_file) if opts.models_file else None)
    echo(f"base: {base.label} ({base.path}){', sha256 ' + base.sha256[:16] + '...' if base.sha256 else ''}")
    folder = hf_folder(base)
    tok = load_tokenizer(folder)
    ptok = PromptTokenizer(tok)
    if opts.dev_inputs and recipe.dev_per_head < 1:
        from radbatch.errors import InputError
        raise InputError(f"recipe {recipe.name}: --dev-archive needs dev_per_head (dev-loss samples per head) in the "
                         "recipe, e.g. dev_per_head = 24")
    data = build_dataset(opts.data, recipes, base.spec, ptok, recipe.max_length, recipe.dev_fraction, recipe.seed,
                         tuple(opts.dev_inputs), recipe.dev_per_head)
    echo(format_counts(data))
    fingerprint = {"base": base.sha256 or str(Path(base.path).resolve()), "recipe_sha256": recipe.sha256,
                   "seed": recipe.seed, "data_sha256": data.fingerprint(), "profile": base.spec.profile}
    fingerprint["max_steps"] = opts.max_steps or recipe.max_steps
    claim_output(out, fingerprint, opts.restart)
    # What made this run, written before training so that an interrupted run can be exported (finetune/export.py).
    # Each sitting (first run or resume) records the code it ran from: a long run should be trained from one
    # pinned commit, and this says whether it was.
    sittings = json.loads((out / "run.json").read_text()).get("sittings", []) if (out / "run.json").exists() else []
    sittings.append({"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **code_version()})
    record = {"fingerprint": fingerprint, "base": dataclasses.asdict(base), "recipe": dataclasses.asdict(recipe),
              "code": sittings[0], "sittings": sittings,
              "data": {"inputs": list(opts.data.inputs), "dev_inputs": list(opts.dev_inputs),
                       "columns": opts.data.columns.named(), "split_by": data.split_by,
                       "counts": {t: dict(c) for t, c in data.counts.items()},
                       "dev_loss_set": data.fixed_dev}}
    _write_json(out / "run.json", record)

    def progress(result) -> None:
        record.update({"steps": result.step, "finished": result.finished, "train_wall_s": round(result.wall_s, 1),
                       "train_loss": result.train_loss, "dev_loss": [(s, m) for s, m, _ in result.dev_loss],
                       "dev_loss_by_task": result.dev_loss[-1][2] if result.dev_loss else {},
                       "dev_loss_curve_by_task": [(s, t) for s, _, t in result.dev_loss],
                       "flatten_check": flatten_check(result.dev_loss)})

    def checkpointed(result) -> None:
        progress(result)
        _write_json(out / "run.json", record)

    model = load_model(folder)
    result = train(model, data, recipe, TrainOptions(out, opts.threads, opts.max_steps, opts.stop_after, opts.quiet,
                                                     checkpointed), ptok.end_id)
    dev_loss = result.dev_loss[-1][1] if result.dev_loss else None
    progress(result)
    summary = FinetuneSummary(out, result.finished, result.step, result.max_steps, None, None, dev_loss,
                              time.time() - started)
    if not result.finished:
        _write_json(out / "run.json", record)
        return summary
    summary.adapter, summary.logit_change = _export(opts, out, base, folder, recipe, data, result, ptok, echo)
    record.update(adapter=str(summary.adapter), logit_change=summary.logit_change)
    if opts.merged:
        from .export import export_merged
        merged = export_merged(result.peft_dir, folder, out / f"merged-{opts.merged}.gguf", opts.merged,
                               out / "export.log")
        record["merged"] = str(merged)
        echo(f"merged model: {merged}")
    summary.wall_s = time.time() - started
    record["total_wall_s"] = round(summary.wall_s, 1)
    _write_json(out / "run.json", record)
    return summary


def code_version() -> dict:
    """The git commit the radbatch package runs from, and whether its tracked files differ from it."""
    import subprocess
    root = Path(__file__).resolve().parents[2]
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()
    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != root:   # an installed copy inside another repo
            return {"commit": None, "dirty": None, "code_dir": str(root)}
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no") != ""
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "code_dir": str(root)}
    return {"commit": commit, "dirty": dirty, "code_dir": str(root)}


def _export(opts, out: Path, base, folder: Path, recipe, data, result, ptok, echo):
    from radbatch import __version__

    from .adapter import BASE_NAME_KEY, BASE_SHA_KEY
    from .export import convert_adapter, verify_adapter

    (result.peft_dir / "README.md").unlink(missing_ok=True)   # peft's model card would name local paths
    trained = sorted({s.task for s in data.train if recipe.weight(s.task) > 0})
    meta = {"radbatch.version": __version__, "radbatch.recipe": recipe.name, "radbatch.recipe_sha256": recipe.sha256,
            "radbatch.seed": recipe.seed, "radbatch.steps": result.step, "radbatch.profile": base.spec.profile,
            "radbatch.tasks": ",".join(trained), "radbatch.data_sha256": data.fingerprint(),
            BASE_NAME_KEY: base.display}
    if base.sha256:
        meta[BASE_SHA_KEY] = base.sha256
    adapter = convert_adapter(result.peft_dir, folder, out / "adapter.gguf", meta, out / "export.log")
    size = adapter.stat().st_size
    echo(f"adapter: {adapter} ({size / 2**20:.1f} MiB)" if size >= 2**20 else f"adapter: {adapter} ({size // 1024} KiB)")
    if base.kind != "gguf":
        echo("not verified in llama.cpp: the base is a Hugging Face folder (convert it to GGUF, then annotate "
             "with that GGUF and --adapter)")
        return adapter, None
    probe = _probe(base, ptok)
    change = verify_adapter(base.path, adapter, probe, opts.threads or 2)
    echo(f"verified: llama.cpp loads the adapter on {Path(base.path).name}; largest logit change {change:.3f}")
    return adapter, change


def _probe(base, ptok) -> list[int]:
    """A fixed prompt (no archive text) for the export check."""
    from radbatch.heads.prompts import render
    from radbatch.heads.recipes import load_recipes
    profile = load_recipes().profiles[base.spec.profile]
    prompt = render(profile.layout, profile.system, base.spec.chat_template, "m_staging",
                    "Give the M stage: M0 or M1.", [("report", "CT chest. No distant metastases.")],
                    base.spec.thinking)
    return ptok.prompt_ids(prompt)


def _write_json(path: Path, data: dict) -> None:
    import os
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)
