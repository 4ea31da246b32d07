"""Dry run of the data step of `radbatch finetune`: what a labelled archive teaches, before any training.

    python finetune/prepare_data.py /tmp/train.parquet --base embedded --max-length 384 \
        --question-column question --hypothesis-column hypothesis \
        --patient-column patient_id --date-column study_date --modality-column modality

Prints, per head: labelled rows turned into samples, rows skipped (gold the head cannot render, inputs the head
needs missing, samples over --max-length) and the token lengths of prompt + answer (median, 95th centile, max),
which is what to look at when choosing a recipe's max_length; with a large --max-length (nothing skipped) it also
prints the share of each head's samples over each --candidates length (issue 12: no head may lose more than 5%). Prints counts only, never report text.
The samples are made exactly as `radbatch finetune` makes them (radbatch/finetune/data.py).
"""

from __future__ import annotations

import argparse

import numpy as np

from radbatch.archive.reading import ColumnOptions
from radbatch.finetune.base import hf_folder, load_tokenizer, resolve_base
from radbatch.finetune.data import DataOptions, PromptTokenizer, build_dataset, format_counts
from radbatch.heads.recipes import load_recipes

# 1. Options: the archive, the base (its tokenizer and prompt profile), and annotate's column options.
parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("labelled", nargs="+")
parser.add_argument("--base", default="embedded")
parser.add_argument("--max-length", type=int, default=384)
parser.add_argument("--dev-fraction", type=float, default=0.1)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--tasks")
parser.add_argument("--candidates", default="384,512,640,768,896,1024",
                    help="max_length candidates: the share of each head's samples longer than each")
for name in ("text", "findings", "impression", "patient", "date", "modality", "question", "hypothesis"):
    parser.add_argument(f"--{name}-column", default="report_text" if name == "text" else None)
args = parser.parse_args()

# 2. The base model's tokenizer (a GGUF is dequantized into the cache once) and its prompt profile.
base = resolve_base(args.base)
ptok = PromptTokenizer(load_tokenizer(hf_folder(base)))
cols = ColumnOptions(text=args.text_column, findings=args.findings_column, impression=args.impression_column,
                     patient=args.patient_column, date=args.date_column, modality=args.modality_column,
                     question=args.question_column, hypothesis=args.hypothesis_column)

# 3. The samples, as `radbatch finetune` builds them, and what they look like in tokens.
data = build_dataset(DataOptions(tuple(args.labelled), cols, tasks=args.tasks), load_recipes(), base.spec, ptok,
                     args.max_length, args.dev_fraction, args.seed)
print(format_counts(data))
print(f"\n{'head':24} {'tokens p50':>10} {'p95':>6} {'max':>6} {'answer p50':>10} {'max':>6}")
for task in sorted(data.counts):
    samples = [s for s in data.train + data.dev if s.task == task]
    if not samples:
        continue
    total = np.array([len(s.ids) for s in samples])
    answer = np.array([len(s.ids) - s.n_prompt for s in samples])
    print(f"{task:24} {np.median(total):>10.0f} {np.percentile(total, 95):>6.0f} {total.max():>6} "
          f"{np.median(answer):>10.0f} {answer.max():>6}")

cands = [int(c) for c in args.candidates.split(",") if c]
print(f"\n{'head':24} {'n':>6} {'p99':>6} " + " ".join(f"{'>' + str(c):>7}" for c in cands))
for task in sorted(data.counts):
    total = np.array([len(s.ids) for s in data.train + data.dev if s.task == task])
    if not len(total):
        continue
    print(f"{task:24} {len(total):>6} {np.percentile(total, 99):>6.0f} "
          + " ".join(f"{(total > c).mean() * 100:>6.1f}%" for c in cands))
