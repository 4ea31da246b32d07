"""Radiology NER: entity F1 per RadGraph label (exact and partial matching) and the paper's ROUGE-L.

Entities carry no offsets, so they are matched per report as (normalised text, label) pairs, one to one.
Exact: equal normalised text and label (a multiset intersection). Partial: the entities left over after
exact matching are paired, same label only, when their token sets share at least one token, greedily by
token Jaccard (highest first); partial counts include the exact matches. ROUGE-L compares the rendered
answers (`- <text> [<LABEL>]` lines in output order, or `None`).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .metrics_text import normalise_entity, rouge_l
from .rows import HeadRows
from .statistics import FigureBlock, f1, macro_f1, micro_f1, precision, ratio, recall
from .task_specs import TaskSpec

Entity = tuple[str, str]  # (normalised text, label)


def entities(value) -> list[Entity]:
    return [(normalise_entity(e.get("text") or ""), (e.get("label") or "").strip().upper()) for e in value or []]


def render(value) -> str:
    lines = [f"- {e.get('text')} [{e.get('label')}]" for e in value or []]
    return "\n".join(lines) if lines else "None"


def match(pred: list[Entity], gold: list[Entity], partial: bool) -> list[Entity]:
    """The gold entities matched by some prediction, one to one."""
    matched = list((Counter(pred) & Counter(gold)).elements())
    if not partial:
        return matched
    rest_p = list((Counter(pred) - Counter(matched)).elements())
    rest_g = list((Counter(gold) - Counter(matched)).elements())
    pairs = []
    for i, (tp, lp) in enumerate(rest_p):
        for j, (tg, lg) in enumerate(rest_g):
            a, b = set(tp.split()), set(tg.split())
            if lp == lg and a & b:
                pairs.append((-len(a & b) / len(a | b), i, j))
    used_p, used_g = set(), set()
    for _, i, j in sorted(pairs):
        if i not in used_p and j not in used_g:
            used_p.add(i), used_g.add(j)
            matched.append(rest_g[j])
    return matched


def invalid_gold_ner(spec: TaskSpec, rows: HeadRows) -> np.ndarray:
    known = set(spec.entity_labels)
    return np.array([not isinstance(v, list) or any(lab not in known for _, lab in entities(v))
                     for v in rows.gold["entities"]], bool)


def _counts(spec: TaskSpec, rows: HeadRows, partial: bool) -> np.ndarray:
    """Per report tp / fp / fn for each label plus an `unknown label` group (its predictions are fp)."""
    groups = list(spec.entity_labels)
    out = np.zeros((rows.n, 3, len(groups) + 1))
    for r, (p_raw, g_raw) in enumerate(zip(rows.pred["entities"], rows.gold["entities"])):
        pred, gold = entities(p_raw), entities(g_raw)
        hits = Counter(lab for _, lab in match(pred, gold, partial))
        n_pred, n_gold = Counter(lab for _, lab in pred), Counter(lab for _, lab in gold)
        for g, lab in enumerate(groups):
            out[r, :, g] = hits[lab], n_pred[lab] - hits[lab], n_gold[lab] - hits[lab]
        out[r, 1, -1] = sum(c for lab, c in n_pred.items() if lab not in groups)
    return out


def score_ner(spec: TaskSpec, rows: HeadRows) -> FigureBlock:
    block = FigureBlock(rows.n)
    rendered = [rouge_l(render(p) if ok else None, render(g))
                for p, g, ok in zip(rows.pred["entities"], rows.gold["entities"], rows.ok)]
    block.figure("rouge_l", block.add(np.column_stack([rendered, np.ones(rows.n)])), ratio, rows.n, summary=True)
    labels = list(spec.entity_labels)
    k = len(labels) + 1
    for mode in ("exact", "partial"):
        counts = _counts(spec, rows, mode == "partial")
        cols = block.add(counts.reshape(rows.n, -1))  # tp_1..tp_k, fp_1..fp_k, fn_1..fn_k
        block.figure(f"{mode}/f1/micro", cols, micro_f1(k), rows.n, summary=True)
        known = np.concatenate([cols[part * k: part * k + k - 1] for part in range(3)])
        block.figure(f"{mode}/f1/macro", known, macro_f1(k - 1), rows.n, summary=True)
        pooled = block.add(counts.sum(axis=2))
        block.figure(f"{mode}/precision/micro", pooled, precision, rows.n)
        block.figure(f"{mode}/recall/micro", pooled, recall, rows.n)
        for g, label in enumerate(labels):
            support = int(counts[:, 0, g].sum() + counts[:, 2, g].sum())
            block.figure(f"{mode}/f1/{label}", cols[[g, k + g, 2 * k + g]], f1, rows.n, support=support)
    block.extras["invalid_predictions"] = int(sum(
        ok and any(lab not in labels for _, lab in entities(p)) for p, ok in zip(rows.pred["entities"], rows.ok)))
    return block
