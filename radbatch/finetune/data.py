"""Labelled archive -> chat training samples, with prompts rendered by annotate's own code path.

A labelled archive has `gold__<task>__<field>` columns (what `radbatch sample` writes; the same names and types
as annotate's `<task>__<field>` output columns). Rows go through rows.prepare() exactly as annotate sends them
(sectionizer, priors, column options, prompt profile), so training and inference cannot drift. A row teaches a
head when any of the head's gold columns is non-null; the target is `HeadInstance.render_answer(gold)` followed by
the end-of-turn token. Values the head cannot render, and samples over max_length, are skipped and counted.

Nothing here logs or returns report text: samples are token ids, statistics are counts.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from radbatch.annotation.rows import prepare
from radbatch.archive import reading as archive
from radbatch.archive.reading import ColumnOptions
from radbatch.errors import InputError, RowError
from radbatch.heads.models import ModelSpec
from radbatch.heads.prompts import Prompt
from radbatch.heads.recipes import Recipes
from radbatch.heads.tasks import HeadInstance, head_instances

GOLD_PREFIX = "gold__"


@dataclass(frozen=True)
class DataOptions:
    inputs: tuple[str, ...]
    columns: ColumnOptions = field(default_factory=ColumnOptions)
    encoding: str = "utf-8"
    tasks: str | None = None     # comma list; default: every head with gold columns in the archive


@dataclass(frozen=True)
class Example:
    """One (row, head) with gold: the prompt as annotate renders it and the target answer text."""

    task: str
    prompt: Prompt
    answer: str
    group: str                   # patient id (the dev split keeps a patient's reports together) or row identity
    row: tuple[int, int]         # (file index, row number)
    classes: tuple[str, ...] = ()  # closed-label heads: the answer's class(es), for class-balanced sampling


@dataclass
class Sample:
    task: str
    ids: np.ndarray              # prompt + answer + end-of-turn token ids (int32)
    n_prompt: int                # the loss covers ids[n_prompt:]
    classes: tuple[str, ...] = ()  # see Example.classes


@dataclass
class Dataset:
    train: list[Sample]
    dev: list[Sample]
    counts: dict[str, Counter]   # task -> {examples, train, dev, unrenderable, not_applicable, too_long}
    split_by: str                # "patient column <name>" or "row"
    fixed_dev: dict[str, int] | None = None   # dev-loss set from dev archives: key -> samples (None: held out)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for part, samples in (("train", self.train), ("dev", self.dev)):
            for s in samples:
                h.update(f"{part}|{s.task}|{s.n_prompt}|".encode())
                h.update(s.ids.tobytes())
        return h.hexdigest()


def gold_columns(head: HeadInstance) -> list[tuple[str, str]]:
    """(bare field name, gold column) for the head's output fields."""
    return [(name, f"{GOLD_PREFIX}{head.recipe.id}__{name}") for name, _ in head.recipe.columns]


def gold_heads(recipes: Recipes, columns: set[str], tasks: str | None) -> list[HeadInstance]:
    """The heads the archive has gold for (optionally a chosen subset; a chosen head without gold is an error)."""
    from radbatch.annotation.plan import select_tasks
    heads = head_instances(select_tasks(recipes, tasks), ())
    with_gold = [h for h in heads if any(col in columns for _, col in gold_columns(h))]
    if tasks not in (None, "", "all"):
        lacking = [h.key for h in heads if h not in with_gold]
        if lacking:
            raise InputError(f"no gold columns for {', '.join(lacking)} (gold__<task>__<field>) in the labelled "
                             "archive. Drop them from --tasks or add their gold.")
    if not with_gold:
        raise InputError("the labelled archive has no gold__<task>__<field> columns (what `radbatch sample` "
                         "writes); found none for any of: " + ", ".join(h.key for h in heads))
    return with_gold


def iter_examples(opts: DataOptions, recipes: Recipes, spec: ModelSpec,
                  counts: dict[str, Counter] | None = None) -> Iterator[Example]:
    """Every (row, head) with gold, in archive order. counts (task -> Counter) collects the skips."""
    from radbatch.archive.priors import build_priors, priors_for
    counts = counts if counts is not None else {}
    files = [archive.inspect(i, p, opts.encoding) for i, p in enumerate(archive.discover(list(opts.inputs)))]
    archive.check_columns(files, opts.columns)
    heads = gold_heads(recipes, set.union(*(set(f.columns) for f in files)), opts.tasks)
    models = {h.key: spec for h in heads}
    cols = opts.columns
    with tempfile.TemporaryDirectory(prefix="radbatch-finetune-") as work:
        wants_priors = any("prior" in h.recipe.inputs for h in heads) and cols.patient and cols.date
        priors_path = build_priors(files, cols, opts.encoding, Path(work), None) if wants_priors else None
        for f in files:
            priors = priors_for(priors_path, f.index)
            for start, table in archive.iter_units(f, opts.encoding, cols.text_columns(), 256):
                unit = prepare(f.index, f.path, start, table, cols, heads, models, recipes.profiles, priors)
                yield from _unit_examples(unit, heads, table, cols, set(f.columns), counts)


def _unit_examples(unit, heads, table, cols: ColumnOptions, common: set[str], counts) -> Iterator[Example]:
    gold = {h.key: {name: (table.column(col).to_pylist() if col in common else None)
                    for name, col in gold_columns(h)} for h in heads}
    prompts = {(r.row, r.slot): r.prompt for r in unit.requests}
    patients = table.column(cols.patient).to_pylist() if cols.patient else None
    for i in range(table.num_rows):
        for head in heads:
            values = {name: (vals[i] if vals is not None else None) for name, vals in gold[head.key].items()}
            if all(v is None for v in values.values()):
                continue
            c = counts.setdefault(head.recipe.id, Counter())
            try:
                values = _from_csv(head, values)
            except ValueError:
                c["unrenderable"] += 1
                continue
            prompt = prompts.get((i, head.key))
            if prompt is None:
                c["not_applicable"] += 1   # empty text, or an input the head needs is missing
                continue
            try:
                answer = head.render_answer(canonical(head.recipe.answer, values))
                head.parse(answer)         # what the head's grammar and parser accept
            except (ValueError, KeyError, TypeError, RowError):
                c["unrenderable"] += 1
                continue
            c["examples"] += 1
            row = unit.start_row + i
            group = f"patient:{patients[i]}" if patients and patients[i] is not None else f"row:{unit.file_index}:{row}"
            yield Example(head.recipe.id, prompt, answer, group, (unit.file_index, row), answer_classes(head, answer))


def answer_classes(head: HeadInstance, answer: str) -> tuple[str, ...]:
    """The class(es) of a closed-label answer, for class-balanced sampling: a choice head's option; for RADS,
    whether a RADS applies at all (systems and categories keep their natural proportions: balancing over the
    ten systems would cut "no applicable RADS", half of all reports, to a tenth of the RADS samples, and rare
    categories would be repeated dozens of times); a labels head's `Label: value` lines. Open heads: ()."""
    from radbatch.heads.answers import ChoiceAnswer, RadsAnswer
    from radbatch.heads.answers_lists import LabelsAnswer
    kind = head.recipe.answer
    if isinstance(kind, ChoiceAnswer):
        return (answer,)
    if isinstance(kind, RadsAnswer):
        return ("none",) if answer == kind.none_text else ("rads",)
    if isinstance(kind, LabelsAnswer):
        return tuple(answer.split("\n")) if answer != kind.none_text else (kind.none_text,)
    return ()


def _from_csv(head: HeadInstance, values: dict) -> dict:
    """List-valued gold read from a CSV is JSON text (how `radbatch sample` writes CSV)."""
    import json

    import pyarrow as pa
    lists = {name for name, dtype in head.recipe.columns if pa.types.is_list(dtype)}
    return {k: (json.loads(v) if k in lists and isinstance(v, str) else v) for k, v in values.items()}


def canonical(answer, values: dict) -> dict:
    """Gold strings matched to the head's vocabulary ignoring case and surrounding spaces (as `radbatch eval`
    matches them); RADS system `none` or the none text with no category is "no applicable RADS"."""
    from radbatch.heads.answers import ChoiceAnswer, RadsAnswer
    from radbatch.heads.answers_lists import ChangesAnswer, EntitiesAnswer, LabelsAnswer

    def match(value, vocab):
        if not isinstance(value, str):
            return value
        return {v.lower(): v for v in vocab}.get(value.strip().lower(), value)

    out = dict(values)
    if isinstance(answer, RadsAnswer):
        system = out.get("system")
        if isinstance(system, str) and system.strip().lower() in ("none", answer.none_text.lower()) \
                and not out.get("category"):
            return {"system": None, "category": None}
        out["system"] = match(system, [name for name, _ in answer.systems])
        out["category"] = match(out.get("category"), dict(answer.systems).get(out["system"], ()))
    elif isinstance(answer, ChoiceAnswer):
        for key in out:
            out[key] = match(out[key], {v for _, vals in answer.options for k, v in vals if k == key})
    elif isinstance(answer, LabelsAnswer):
        out = {k: match(v, answer.values) for k, v in out.items()}
    elif isinstance(answer, EntitiesAnswer) and out.get(answer.column):
        out[answer.column] = [{**e, "label": match(e.get("label"), answer.labels)} for e in out[answer.column]]
    elif isinstance(answer, ChangesAnswer) and out.get(answer.column):
        vocab = {**{v.lower(): v for _, v in answer.classes}, **{d.lower(): v for d, v in answer.classes}}
        out[answer.column] = [{**c, "change": vocab.get(str(c.get("change") or "").strip().lower(), c.get("change"))}
                              for c in out[answer.column]]
    return out


class PromptTokenizer:
    """Token ids the way annotate's llama.cpp engine makes them (engine.LlamaEngine.tokens): template parts with
    special tokens enabled, report-derived parts with special tokens disabled, the tokenizer's BOS if it adds one."""

    def __init__(self, tok, end_token: str = "<|im_end|>"):
        self.tok = tok
        with_special = tok("a", add_special_tokens=True).input_ids
        plain = tok("a", add_special_tokens=False).input_ids
        self.prefix = list(with_special[: len(with_special) - len(plain)])
        self.end_id = tok.convert_tokens_to_ids(end_token)
        if self.end_id is None or self.end_id == tok.unk_token_id:
            raise InputError(f"the base model's tokenizer has no {end_token!r} token; radbatch's prompts are ChatML")

    def text_ids(self, text: str, special: bool) -> list[int]:
        return self.tok(text, add_special_tokens=False, split_special_tokens=not special).input_ids

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        ids = list(self.prefix)
        for text, is_template in prompt.parts:
            ids += self.text_ids(text, special=is_template)
        return ids

    def answer_ids(self, answer: str) -> list[int]:
        return self.text_ids(answer, special=False) + [self.end_id]


def dev_group(group: str, seed: int, fraction: float) -> bool:
    digest = hashlib.blake2b(f"{seed}\x00{group}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def build_dataset(opts: DataOptions, recipes: Recipes, spec: ModelSpec, ptok: PromptTokenizer,
                  max_length: int, dev_fraction: float, seed: int, dev_inputs: tuple[str, ...] = (),
                  dev_per_head: int = 0) -> Dataset:
    """Training samples from opts.inputs. With dev_inputs, the dev-loss set is fixed_dev_set() of those archives
    (and dev_fraction still holds rows of the training archives out, unused: set it to 0); else it is the
    held-out dev_fraction of the training archives' patients."""
    data = _build(opts, recipes, spec, ptok, max_length, dev_fraction, seed)
    if dev_inputs:
        data.dev = fixed_dev_set(opts, dev_inputs, recipes, spec, ptok, dev_per_head)
        data.fixed_dev = dict(Counter(s.task for s in data.dev))
    return data


DEV_SELECTION = "radbatch-dev-v1"   # fixed, never a recipe's seed: every member gets the same dev-loss set


def fixed_dev_set(opts: DataOptions, dev_inputs: tuple[str, ...], recipes: Recipes, spec: ModelSpec,
                  ptok: PromptTokenizer, per_head: int) -> list[Sample]:
    """The same dev-loss samples for every run: per dev archive and head, the `per_head` examples that come first
    in a fixed hash order of (report group, row). Not filtered by max_length (every member is scored on the same
    samples, whatever its recipe). Heads of the first archive are keyed by task id; those of later archives by
    `task@<file stem>` (e.g. abnormality_detection@radlabels-dev: real phrasing, kept apart)."""
    out: list[Sample] = []
    for n, path in enumerate(dev_inputs):
        by_task: dict[str, list[tuple[bytes, Example]]] = {}
        one = DataOptions((path,), opts.columns, opts.encoding, None)
        for ex in iter_examples(one, recipes, spec):
            if opts.tasks not in (None, "", "all") and ex.task not in opts.tasks.split(","):
                continue
            order = hashlib.blake2b(f"{DEV_SELECTION}\x00{ex.group}\x00{ex.row[1]}".encode(), digest_size=8).digest()
            by_task.setdefault(ex.task, []).append((order, ex))
        for task in sorted(by_task):
            key = task if n == 0 else f"{task}@{Path(path).stem}"
            for _, ex in sorted(by_task[task], key=lambda p: p[0])[:per_head]:
                prompt = ptok.prompt_ids(ex.prompt)
                out.append(Sample(key, np.asarray(prompt + ptok.answer_ids(ex.answer), dtype=np.int32), len(prompt),
                                  ex.classes))
    if not out:
        raise InputError("the dev archives gave no dev-loss samples (no gold columns for the trained heads?)")
    return out


def class_balanced_weights(samples: list[Sample], task_weight: dict[str, float], power: float) -> np.ndarray:
    """Sampling weight of each training sample. A head keeps its share (task weight x its samples, as without
    balancing); within a closed-label head the share is spread over its classes in proportion to n_class^(1-power)
    (power 1: every class drawn equally often; 0: natural proportions). A sample with several classes (a labels
    head's `Label: value` lines) counts under its rarest one, so rare positive labels are drawn more often.
    Open heads (no classes) keep natural proportions."""
    w = np.array([task_weight.get(s.task, 0.0) for s in samples], dtype=np.float64)
    if power <= 0:
        return w
    by_task: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        if s.classes:
            by_task.setdefault(s.task, []).append(i)
    for task, idx in by_task.items():
        freq = Counter(c for i in idx for c in samples[i].classes)
        key = {i: min(samples[i].classes, key=lambda c: (freq[c], c)) for i in idx}
        n_class = Counter(key.values())
        share = np.array([n_class[key[i]] ** (1.0 - power) / n_class[key[i]] for i in idx])
        w[idx] = task_weight.get(task, 0.0) * len(idx) * share / share.sum()
    return w


def _build(opts: DataOptions, recipes: Recipes, spec: ModelSpec, ptok: PromptTokenizer,
           max_length: int, dev_fraction: float, seed: int) -> Dataset:
    counts: dict[str, Counter] = {}
    train, dev = [], []
    for ex in iter_examples(opts, recipes, spec, counts):
        prompt = ptok.prompt_ids(ex.prompt)
        ids = prompt + ptok.answer_ids(ex.answer)
        c = counts[ex.task]
        if len(ids) > max_length:
            c["too_long"] += 1
            continue
        sample = Sample(ex.task, np.asarray(ids, dtype=np.int32), len(prompt), ex.classes)
        if dev_group(ex.group, seed, dev_fraction):
            dev.append(sample)
            c["dev"] += 1
        else:
            train.append(sample)
            c["train"] += 1
    if not train:
        raise InputError("no training samples: every labelled row was skipped (see the counts) or held out")
    split_by = f"patient column {opts.columns.patient!r}" if opts.columns.patient else \
        "row (pass --patient-column to keep each patient's reports on one side)"
    return Dataset(train, dev, counts, split_by)


def format_counts(data: Dataset) -> str:
    """A small table of counts per head (no text from the archive)."""
    keys = ("examples", "train", "dev", "unrenderable", "not_applicable", "too_long")
    lines = [f"{'head':24} " + " ".join(f"{k:>14}" for k in keys)]
    for task in sorted(data.counts):
        lines.append(f"{task:24} " + " ".join(f"{data.counts[task][k]:>14}" for k in keys))
    if data.fixed_dev is not None:
        lines.append("dev-loss set (dev archives, the same for every run): "
                     + ", ".join(f"{k} {n}" for k, n in sorted(data.fixed_dev.items())))
    else:
        lines.append(f"dev split by {data.split_by}")
    return "\n".join(lines)
