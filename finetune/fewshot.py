"""Few-shot annotate: each head's prompt preceded by K solved examples from a labelled (train) archive.

    python finetune/fewshot.py /tmp/test24.parquet --examples /tmp/train.parquet --shots 2 \
        -o ~/ft-eval/fewshot.parquet --question-column question --hypothesis-column hypothesis \
        --patient-column patient_id --date-column study_date --modality-column modality \
        [--model routed | --model smollm2-ft-a | --adapter A.gguf] [--per-class 1] [--engine simple]

The comparison arm of docs/finetune-results.md (RadLite: few-shot prompting, and few-shot prompting of the
fine-tuned models). Everything but the prompt is annotate's own code: rows.prepare() renders the query,
finetune_data.iter_examples() renders the examples exactly as training does, the llama.cpp engine decodes with
the head's grammar, rows.assemble() parses into annotate's output columns, so `radbatch eval` scores the file
like any annotate output. The examples are earlier chat turns: user prompt, assistant answer, <|im_end|>.
The batched engine (default) decodes each head's shared examples prefix once per unit of --unit-size rows.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from radbatch.archive import reading as archive
from radbatch.archive.private_files import open_private
from radbatch.archive.reading import ColumnOptions
from radbatch.engines.simple import LlamaEngine
from radbatch.engines.spec import Request
from radbatch.finetune.data import DataOptions, iter_examples
from radbatch.heads.models import load_models, materialise
from radbatch.annotation.plan import select_tasks
from radbatch.archive.priors import build_priors, priors_for
from radbatch.heads.prompts import Prompt, chat_wrap
from radbatch.heads.recipes import load_recipes
from radbatch.heads.routing import load_routing
from radbatch.annotation.rows import assemble, prepare
from radbatch.heads.tasks import head_instances

# 1. Options: test archive, example archive, shots, model (models.toml name) and an optional adapter.
parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("inputs", nargs="+")
parser.add_argument("--examples", required=True, help="labelled archive to draw the examples from")
parser.add_argument("--shots", type=int, default=2, help="examples per head (open heads, or without --per-class)")
parser.add_argument("--per-class", type=int, default=0, help="closed-label heads: this many examples of each "
                    "answer class (stratified, RadLite's few-shot arm)")
parser.add_argument("--engine", choices=("batched", "simple"), default="batched")
parser.add_argument("--unit-size", type=int, default=32, help="rows per unit (batched: the examples prefix "
                    "is decoded once per unit and head)")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--max-example-chars", type=int, default=900, help="only short reports as examples")
parser.add_argument("-o", "--output", required=True)
parser.add_argument("--model", default="smollm2", help="models.toml name, or 'routed': each head's model from "
                    "recipes/routing.toml (the few-shot variant of the fine-tuned ensemble)")
parser.add_argument("--adapter")
parser.add_argument("--tasks")
parser.add_argument("--threads", type=int, default=2)
for name in ("text", "findings", "impression", "patient", "date", "modality", "question", "hypothesis"):
    parser.add_argument(f"--{name}-column", default="report_text" if name == "text" else None)
args = parser.parse_args()

recipes = load_recipes()
catalogue = load_models(recipes.root / "models.toml", set(recipes.profiles))
heads = head_instances(select_tasks(recipes, args.tasks), ())
if args.model == "routed":
    routing = load_routing(recipes.root / "routing.toml", set(recipes.tasks), set(catalogue))
    names = {h.recipe.id: routing.model_for(h.recipe.id) for h in heads}
else:
    names = {h.recipe.id: args.model for h in heads}
specs = {n: materialise(catalogue[n]) for n in set(names.values())}
if args.adapter:
    specs = {n: replace(s, adapter=str(Path(args.adapter).resolve())) for n, s in specs.items()}
task_spec = {t: specs[n] for t, n in names.items()}
print("models per head:", names)
cols = ColumnOptions(text=args.text_column, findings=args.findings_column, impression=args.impression_column,
                     patient=args.patient_column, date=args.date_column, modality=args.modality_column,
                     question=args.question_column, hypothesis=args.hypothesis_column)

# 2. The examples, rendered for the model that serves each head: short ones, chosen with the seed. With
#    --per-class N (RadLite's comparison, issue 12 item 6) a closed-label head gets N examples of each answer class
#    (NLI: entailment, neutral, contradiction; M: M0, M1; N: each stage; RADS: applies or not), in a fixed
#    class order; an open head (QA) gets --shots. Without it, --shots examples with distinct answers where possible.
pool: dict[str, list] = {}
for name, spec in specs.items():
    served = ",".join(t for t, n in names.items() if n == name)
    for ex in iter_examples(DataOptions((args.examples,), cols, tasks=served), recipes, spec):
        if len(ex.prompt.text) <= args.max_example_chars and len(pool.setdefault(ex.task, [])) < 400:
            pool[ex.task].append(ex)
rng = random.Random(args.seed)


def answer_class(ex) -> str | None:
    """A choice head's option (N staging: `Positive, N1`), RADS: applies or not; None for open heads."""
    return ex.classes[0] if len(ex.classes) == 1 else None


def stratified(found: list, per_class: int) -> list:
    by_class: dict[str, list] = {}
    for ex in found:
        key = answer_class(ex)
        if key is not None:
            by_class.setdefault(key, []).append(ex)
    if not by_class:
        return found[: args.shots]
    return [ex for j in range(per_class) for key in sorted(by_class) for ex in by_class[key][j:j + 1]]


shots = {}
for task, found in pool.items():
    rng.shuffle(found)
    if args.per_class:
        shots[task] = stratified(found, args.per_class)
        continue
    picked = []
    for ex in found:   # first pass: distinct answers
        if len(picked) < args.shots and ex.answer not in {p.answer for p in picked}:
            picked.append(ex)
    picked += [ex for ex in found if ex not in picked][: args.shots - len(picked)]
    shots[task] = picked
print("examples per head:", {t: len(v) for t, v in shots.items()})
print("example classes per head:", {t: [answer_class(e) for e in v] for t, v in shots.items()})


# 3. The few-shot prompt: the examples as earlier turns of one conversation (one system turn, at the start).
def fewshot(query: Prompt, task: str) -> Prompt:
    spec = task_spec[task]
    system_head, _ = chat_wrap(spec.chat_template, recipes.profiles[spec.profile].system)
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


# 4. Annotate: annotate's units and prompts, few-shot requests, annotate's output columns. --engine batched
#    (annotate's default) decodes a unit's requests together, so each head's examples prefix is decoded once per
#    unit (--unit-size rows); --engine simple runs them one by one, head by head.
grammars = {h.recipe.id: h.grammar() for h in heads}
if args.engine == "batched":
    from radbatch.engines.batched import BatchedEngine
    engines = {n: BatchedEngine(s, args.threads, 0, grammars) for n, s in specs.items()}
else:
    engines = {n: LlamaEngine(s, args.threads, 0, grammars) for n, s in specs.items()}
models = {h.key: task_spec[h.recipe.id] for h in heads}


def decode(requests: list[Request]) -> list:
    done = {}
    for name, engine in engines.items():
        mine = [i for i, r in enumerate(requests) if names[r.task] == name]
        mine.sort(key=lambda i: (requests[i].slot, i))
        if args.engine == "batched":
            done.update(zip(mine, engine.complete_many([requests[i] for i in mine])))
        else:
            done.update((i, engine.complete(requests[i])) for i in mine)
    return [done[i] for i in range(len(requests))]


files = [archive.inspect(i, Path(p), "utf-8") for i, p in enumerate(archive.discover(args.inputs))]
archive.check_columns(files, cols)
tables = []
with __import__("tempfile").TemporaryDirectory() as work:
    priors_path = build_priors(files, cols, "utf-8", Path(work), None) if cols.patient and cols.date else None
    for f in files:
        priors = priors_for(priors_path, f.index)
        for start, table in archive.iter_units(f, "utf-8", cols.text_columns(), args.unit_size):
            unit = prepare(f.index, f.path, start, table, cols, heads, models, recipes.profiles, priors)
            unit.requests = [Request(r.row, r.slot, r.task, r.model, fewshot(r.prompt, r.task), r.max_tokens)
                             for r in unit.requests]
            tables.append(assemble(unit, heads, decode(unit.requests), "",
                                   ["report_id"] if "report_id" in f.columns else [], models, False))
            print(f"rows {start}..{start + table.num_rows - 1} done", flush=True)
with open_private(Path(args.output)) as f:   # report text: owner-only
    pq.write_table(pa.concat_tables(tables), f)
print(f"wrote {args.output}")
