"""Export any checkpoint of a `radbatch finetune` run as a GGUF LoRA adapter (and optionally a merged GGUF).

    python finetune/export.py ~/ft-runs/v2a -o adapters/smollm2-radbatch-v2a.gguf
    python finetune/export.py ~/ft-runs/v2a --checkpoint step-0000040.pt -o /tmp/at-step-40.gguf
    python finetune/export.py ~/ft-runs/v2a -o /tmp/a.gguf --merged q4_k_m

`radbatch finetune` exports the final adapter itself (RUN/adapter.gguf); this script is for an earlier checkpoint
(e.g. the one with the best dev loss), an interrupted run, or a merged model. It reads RUN/run.json for the base
model and recipe, stamps the adapter with the base's sha256 like the command does, and checks in llama.cpp that
the adapter loads and changes the base model's logits.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

from radbatch import __version__
from radbatch.finetune.adapter import BASE_NAME_KEY, BASE_SHA_KEY
from radbatch.finetune.base import Base, hf_folder, load_model, load_tokenizer
from radbatch.finetune.data import PromptTokenizer
from radbatch.finetune.export import convert_adapter, export_merged, verify_adapter
from radbatch.finetune.run import _probe
from radbatch.heads.models import ModelSpec

# 1. The run: its base model, recipe and the checkpoint to export (default: the newest).
parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("run", type=Path, help="the -o folder of `radbatch finetune`")
parser.add_argument("-o", "--output", type=Path, required=True, help="the adapter .gguf to write")
parser.add_argument("--checkpoint", help="a file in RUN/checkpoints (default: the newest)")
parser.add_argument("--merged", metavar="QUANT", help="also write OUTPUT's name + -merged-QUANT.gguf")
args = parser.parse_args()

run = json.loads((args.run / "run.json").read_text())
base = Base(**{**run["base"], "spec": ModelSpec(**run["base"]["spec"])})
recipe = run["recipe"]
checkpoints = sorted((args.run / "checkpoints").glob("step-*.pt"))
ckpt = args.run / "checkpoints" / args.checkpoint if args.checkpoint else checkpoints[-1]
state = torch.load(ckpt, weights_only=False)
print(f"{ckpt.name}: step {state['step']}, dev loss {state['dev_loss'][-1][1] if state['dev_loss'] else 'n/a'}")

# 2. The LoRA model as the run built it, with the checkpoint's adapter weights, saved in peft's format.
folder = hf_folder(base)
model = get_peft_model(load_model(folder), LoraConfig(
    r=recipe["r"], lora_alpha=recipe["lora_alpha"], lora_dropout=recipe["lora_dropout"],
    target_modules=list(recipe["target_modules"]), layers_to_transform=recipe.get("layers_to_transform"),
    task_type="CAUSAL_LM"))
set_peft_model_state_dict(model, state["adapter"])
work = Path(tempfile.mkdtemp(prefix="radbatch-export-"))
model.save_pretrained(work / "peft")
(work / "peft" / "README.md").unlink(missing_ok=True)

# 3. GGUF adapter with the same radbatch.* metadata as `radbatch finetune` writes, verified in llama.cpp.
meta = {"radbatch.version": __version__, "radbatch.recipe": recipe["name"], "radbatch.recipe_sha256": recipe["sha256"],
        "radbatch.seed": recipe["seed"], "radbatch.steps": state["step"], "radbatch.profile": base.spec.profile,
        "radbatch.tasks": ",".join(sorted(t for t, c in run["data"]["counts"].items()
                                          if c.get("train") and dict(recipe["task_weights"]).get(t, 0) > 0)),
        "radbatch.data_sha256": run["fingerprint"]["data_sha256"], BASE_NAME_KEY: base.display}
if base.sha256:
    meta[BASE_SHA_KEY] = base.sha256
args.output.parent.mkdir(parents=True, exist_ok=True)
convert_adapter(work / "peft", folder, args.output, meta, work / "export.log")
print(f"adapter: {args.output} ({args.output.stat().st_size // 1024} KiB)")
if base.kind == "gguf":
    probe = _probe(base, PromptTokenizer(load_tokenizer(folder)))
    print(f"verified in llama.cpp; largest logit change {verify_adapter(base.path, args.output, probe):.3f}")

# 4. Optionally base + adapter merged into one quantized GGUF.
if args.merged:
    merged = args.output.with_name(f"{args.output.stem}-merged-{args.merged}.gguf")
    export_merged(work / "peft", folder, merged, args.merged, work / "export.log")
    print(f"merged model: {merged}")
shutil.rmtree(work, ignore_errors=True)
