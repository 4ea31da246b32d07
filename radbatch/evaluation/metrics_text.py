"""Free-text heads (impression generation, QA): ROUGE-L and token F1, each a mean over reports.

ROUGE-L is rouge-score's sentence-level `rougeL` F-measure (LCS over its tokenizer: lowercase, runs of
[a-z0-9]), without stemming. Token F1 is the SQuAD measure: lowercase, drop punctuation and the articles
a/an/the, then F1 of the bag-of-tokens overlap. For both, two empty texts score 1 and a missing
prediction (error, truncated, missing row) scores 0.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from functools import lru_cache

import numpy as np

from .rows import HeadRows
from .statistics import FigureBlock, ratio
from .task_specs import TaskSpec

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer, tokenizers  # imported here: it pulls in nltk

    tokenizer = tokenizers.DefaultTokenizer(use_stemmer=False)
    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=tokenizer), tokenizer


def rouge_l(prediction: str | None, reference: str) -> float:
    if prediction is None:
        return 0.0
    scorer, tokenizer = _rouge()
    if not tokenizer.tokenize(prediction) and not tokenizer.tokenize(reference):
        return 1.0
    return scorer.score(reference, prediction)["rougeL"].fmeasure


def squad_tokens(text: str) -> list[str]:
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split()


def token_f1(prediction: str | None, reference: str) -> float:
    if prediction is None:
        return 0.0
    pred, ref = squad_tokens(prediction), squad_tokens(reference)
    if not pred and not ref:
        return 1.0
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    p, r = common / len(pred), common / len(ref)
    return 2 * p * r / (p + r)


def invalid_gold_text(spec: TaskSpec, rows: HeadRows) -> np.ndarray:
    return np.array([not isinstance(v, str) for v in rows.gold[spec.fields[0]]], bool)


def score_text(spec: TaskSpec, rows: HeadRows) -> FigureBlock:
    field = spec.fields[0]  # a text answer has one column (answers.TextAnswer)
    pairs = list(zip(rows.pred[field], rows.gold[field]))
    block = FigureBlock(rows.n)
    ones = np.ones(rows.n)
    for key, measure in (("rouge_l", rouge_l), ("token_f1", token_f1)):
        scores = np.array([measure(p, g) for p, g in pairs], float)
        block.figure(key, block.add(np.column_stack([scores, ones])), ratio, rows.n, summary=True)
    return block


def normalise_entity(text: str) -> str:
    """Entity / finding text for matching: lowercase, runs of non-alphanumerics become one space."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())
