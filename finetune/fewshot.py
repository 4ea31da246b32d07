"""Few-shot annotate: each head's prompt preceded by K solved examples from a labelled (train) archive.

    python finetune/fewshot.py /tmp/test24.parquet --examples /tmp/train.parquet --shots 2 \
        -o ~/ft-eval/fewshot.parquet --question-column question --hypothesis-column hypothesis \
        --patient-column patient_id --date-column study_date --modality-column modality [--adapter A.gguf]

The comparison arm of docs/finetune-results.md (RadLite: few-shot prompting, and few-shot prompting of the
fine-tuned models). Everything but the prompt is annotate's own code: rows.prepare() renders the query,
finetune_data.iter_examples() renders the examples exactly as training does, the llama.cpp engine decodes with
the head's grammar, rows.assemble() parses into annotate's output columns, so `radbatch eval` scores the file
like any annotate output. The examples are earlier chat turns: user prompt, assistant answer, <|im_end|>.
Requests run head by head, so llama.cpp reuses the shared examples prefix across reports.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from radbatch import archive
from radbatch.archive import ColumnOptions
from radbatch.engine import LlamaEngine, Request
from radbatch.finetune_data import DataOptions, iter_examples
from radbatch.models import load_models, materialise
from radbatch.plan import select_tasks
from radbatch.priors import build_priors, priors_for
from radbatch.prompts import Prompt, chat_wrap
from radbatch.recipes import load_recipes
from radbatch.rows import assemble, prepare
from radbatch.tasks import head_instances

# 1. Options: test archive, example archive, shots, model (models.toml name) and an optional adapter.
parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("inputs", nargs="+")
parser.add_argument("--examples", required=True, help="labelled archive to draw the examples from")
parser.add_argument("--shots", type=int, default=2)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--max-example-chars", type=int, default=900, help="only short reports as examples")
parser.add_argument("-o", "--output", required=True)
parser.add_argument("--model", default="smollm2")
parser.add_argument("--adapter")
parser.add_argument("--tasks")
parser.add_argument("--threads", type=int, default=2)
for name in ("text", "findings", "impression", "patient", "date", "modality", "question", "hypothesis"):
    parser.add_argument(f"--{name}-column", default="report_text" if name == "text" else None)
args = parser.parse_args()

recipes = load_recipes()
spec = materialise(load_models(recipes.root / "models.toml", set(recipes.profiles))[args.model])
if args.adapter:
    spec = replace(spec, adapter=str(Path(args.adapter).resolve()))
profile = recipes.profiles[spec.profile]
heads = head_instances(select_tasks(recipes, args.tasks), ())
cols = ColumnOptions(text=args.text_column, findings=args.findings_column, impression=args.impression_column,
                     patient=args.patient_column, date=args.date_column, modality=args.modality_column,
                     question=args.question_column, hypothesis=args.hypothesis_column)

# 2. The examples: K per head, short ones, different answers where possible, chosen with the seed.
pool: dict[str, list] = {}
for ex in iter_examples(DataOptions((args.examples,), cols, tasks=args.tasks), recipes, spec):
    if len(ex.prompt.text) <= args.max_example_chars and len(pool.setdefault(ex.task, [])) < 200:
        pool[ex.task].append(ex)
rng = random.Random(args.seed)
shots = {}
for task, found in pool.items():
    rng.shuffle(found)
    picked = []
    for ex in found:   # first pass: distinct answers
        if len(picked) < args.shots and ex.answer not in {p.answer for p in picked}:
            picked.append(ex)
    picked += [ex for ex in found if ex not in picked][: args.shots - len(picked)]
    shots[task] = picked
print("examples per head:", {t: len(v) for t, v in shots.items()})

# 3. The few-shot prompt: the examples as earlier turns of one conversation (one system turn, at the start).
system_head, _ = chat_wrap(spec.chat_template, profile.system)


def fewshot(query: Prompt, task: str) -> Prompt:
    parts: list[tuple[str, bool]] = []
    for i, (prompt, answer) in enumerate([(ex.prompt, ex.answer) for ex in shots.get(task, [])] + [(query, None)]):
        p = list(prompt.parts)
        if i > 0:
            assert p[0][0].startswith(system_head)
            p[0] = ("<|im_start|>user\n" + p[0][0][len(system_head):], True)
        parts += p
        if answer is not None:
            parts += [(answer, False), ("<|im_end|>\n", True)]
    return Prompt(tuple(parts))


# 4. Annotate: annotate's units and prompts, few-shot requests run head by head, annotate's output columns.
grammars = {h.recipe.id: h.grammar() for h in heads}
engine = LlamaEngine(spec, args.threads, 0, grammars)
models = {h.key: spec for h in heads}
files = [archive.inspect(i, Path(p), "utf-8") for i, p in enumerate(archive.discover(args.inputs))]
archive.check_columns(files, cols)
tables = []
with __import__("tempfile").TemporaryDirectory() as work:
    priors_path = build_priors(files, cols, "utf-8", Path(work), None) if cols.patient and cols.date else None
    for f in files:
        priors = priors_for(priors_path, f.index)
        for start, table in archive.iter_units(f, "utf-8", cols.text_columns(), 8):
            unit = prepare(f.index, f.path, start, table, cols, heads, models, recipes.profiles, priors)
            unit.requests = [Request(r.row, r.slot, r.task, r.model, fewshot(r.prompt, r.task), r.max_tokens)
                             for r in unit.requests]
            order = sorted(range(len(unit.requests)), key=lambda i: (unit.requests[i].slot, i))
            done = {i: engine.complete(unit.requests[i]) for i in order}
            tables.append(assemble(unit, heads, [done[i] for i in range(len(unit.requests))], "",
                                   ["report_id"] if "report_id" in f.columns else [], models, False))
            print(f"rows {start}..{start + table.num_rows - 1} done", flush=True)
pq.write_table(pa.concat_tables(tables), args.output)
print(f"wrote {args.output}")
