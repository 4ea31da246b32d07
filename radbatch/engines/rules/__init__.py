"""Deterministic rule members: models.toml entries with `kind = "rules"` that serve some heads without a model.

A rules member is run by radbatch.engines.rules_engine.RulesEngine inside the workers like any engine: it receives the
head's Request, reads the report from the prompt's user text and returns a Completion whose text is exactly the
answer the head's parser reads, so columns, statuses and provenance (`<task>__model`) are those of any member.
It needs no model file and no model memory; its sha256 (run key, `radbatch models`) is the hash of its source
files, so changing a rule changes the run key.

HEADS lists the heads a rules member serves; routing one to any other head is refused before work starts.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

from radbatch.engines.rules import chexpert, rads, staging

KIND = "rules"
SOURCE_DIR = Path(__file__).resolve().parent
# head (task id) -> answer function (primary input text -> answer text in the head's format)
HEADS: dict[str, Callable[[str], str]] = {
    "abnormality_detection": chexpert.answer,
    "rads_assignment": rads.answer,
    "m_staging": staging.answer_m,
}


def source_files() -> list[Path]:
    """The files whose bytes decide the rules' answers: this package and the engine that runs it."""
    return sorted(SOURCE_DIR.glob("*.py")) + [SOURCE_DIR.parent / "rules_engine.py"]


def source_sha256() -> str:
    """sha256 over the source files, each as its name relative to radbatch/, a NUL, its bytes, a NUL."""
    h = hashlib.sha256()
    root = SOURCE_DIR.parent
    for path in source_files():
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def unserved(task_ids) -> list[str]:
    return sorted(t for t in task_ids if t not in HEADS)


def check_recipe(recipe) -> list[str]:
    """Problems that keep the rules from answering in this recipe's format (a recipe edited since)."""
    if tuple(recipe.inputs[:1]) != ("report",):  # the engine reads the prompt's first user part as the report
        return [f"its first input is {recipe.inputs[0] if recipe.inputs else 'missing'}, not the report"]
    if recipe.id == "abnormality_detection":
        names = tuple(name for name, _ in recipe.answer.labels)
        values = set(recipe.answer.values)
        problems = []
        if names != chexpert.LABELS:
            problems.append("its labels are not the 14 CheXpert labels in the rules' order "
                            f"({', '.join(chexpert.LABELS)})")
        if not {"positive", "negative", "uncertain"} <= values or recipe.answer.none_text != chexpert.NONE_TEXT:
            problems.append("its values / none_text differ from positive, negative, uncertain / None")
        return problems
    if recipe.id == "rads_assignment":
        systems = dict(recipe.answer.systems)
        missing = [f"{s} {c}" for s, cats in rads.VALID.items() for c in cats if c not in systems.get(s, ())]
        problems = [f"its systems lack {', '.join(missing)}"] if missing else []
        if recipe.answer.none_text != rads.NONE_TEXT:
            problems.append(f"its none_text is not {rads.NONE_TEXT!r}")
        return problems
    if recipe.id == "m_staging":
        texts = {text for text, _ in getattr(recipe.answer, "options", ())}
        return [] if {"M0", "M1"} <= texts else ["its answer options are not M0 and M1"]
    return []
