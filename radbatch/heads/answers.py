"""Answer kinds: how a head's answer is written, constrained (GBNF grammar) and parsed into columns.

A kind is built from a task recipe's [answer] table. For every kind `parse(render(values)) == values`, and the
grammar accepts exactly the texts `parse` accepts (tests check both), so constrained decoding can only produce
parseable output and training targets are always grammatical.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from radbatch.errors import RowError

Values = dict[str, Any]
NO_RADS = "none"
_THINK = re.compile(r"^\s*<think>.*?</think>\s*", re.S)


def lit(text: str) -> str:
    """A GBNF string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _alts(texts: list[str]) -> str:
    return " | ".join(lit(t) for t in texts)


def clean(text: str) -> str:
    """Strip a (Qwen3) think block and surrounding whitespace before parsing."""
    return _THINK.sub("", text).strip()


@dataclass(frozen=True)
class ChoiceAnswer:
    """One of a fixed list of answer texts, each mapping to column values."""

    options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]

    @classmethod
    def build(cls, spec: dict, problems: list[str], where: str) -> "ChoiceAnswer":
        opts = []
        for i, opt in enumerate(spec.get("options") or []):
            if set(opt) != {"text", "values"} or not isinstance(opt.get("values"), dict):
                problems.append(f"{where}: answer.options[{i}] needs exactly 'text' and a 'values' table")
                continue
            opts.append((opt["text"], tuple(sorted(opt["values"].items()))))
        if not opts:
            problems.append(f"{where}: answer kind 'choice' needs at least one [[answer.options]]")
        return cls(tuple(opts))

    def columns(self) -> list[str]:
        return sorted({k for _, vals in self.options for k, _ in vals})

    def grammar(self) -> str:
        return "root ::= " + _alts([t for t, _ in self.options])

    def parse(self, text: str) -> Values:
        text = clean(text)
        for opt_text, vals in self.options:
            if text == opt_text:
                return dict(vals)
        raise RowError(f"answer is not one of the {len(self.options)} allowed options")

    def render(self, values: Values) -> str:
        for opt_text, vals in self.options:
            if dict(vals) == {k: values.get(k) for k, _ in vals}:
                return opt_text
        raise ValueError("values match no option")


@dataclass(frozen=True)
class RadsAnswer:
    """`<SYSTEM> <category>` from a per-system category table, or a fixed none text.

    "No RADS applies" is an answer, so it is a value (system "none", category null); a null system
    always means "no answer" (or, in gold columns, "not labelled").
    """

    systems: tuple[tuple[str, tuple[str, ...]], ...]
    none_text: str

    @classmethod
    def build(cls, spec: dict, problems: list[str], where: str) -> "RadsAnswer":
        systems = spec.get("systems") or {}
        if not systems or not all(isinstance(v, list) and v for v in systems.values()):
            problems.append(f"{where}: answer.systems must map each system to a non-empty category list")
        return cls(tuple((k, tuple(v)) for k, v in systems.items()), _none(spec, problems, where))

    def columns(self) -> list[str]:
        return ["category", "system"]

    def grammar(self) -> str:
        rules = [f"root ::= {lit(self.none_text)}" + "".join(f" | s{i}" for i in range(len(self.systems)))]
        for i, (name, cats) in enumerate(self.systems):
            rules.append(f"s{i} ::= {lit(name + ' ')} ({_alts(list(cats))})")
        return "\n".join(rules)

    def parse(self, text: str) -> Values:
        text = clean(text)
        if text == self.none_text:
            return {"system": NO_RADS, "category": None}
        for name, cats in sorted(self.systems, key=lambda s: -len(s[0])):
            if text.startswith(name + " ") and text[len(name) + 1:] in cats:
                return {"system": name, "category": text[len(name) + 1:]}
        raise RowError("answer is not a known RADS system and category")

    def render(self, values: Values) -> str:
        if values.get("system") in (None, NO_RADS):
            return self.none_text
        cats = dict(self.systems).get(values["system"], ())
        if values.get("category") not in cats:
            raise ValueError("unknown RADS system or category")
        return f"{values['system']} {values['category']}"


@dataclass(frozen=True)
class TextAnswer:
    """Free text of one or more non-empty lines."""

    column: str

    @classmethod
    def build(cls, spec: dict, problems: list[str], where: str) -> "TextAnswer":
        if not isinstance(spec.get("column"), str):
            problems.append(f"{where}: answer kind 'text' needs column = \"<name>\"")
        return cls(spec.get("column", "text"))

    def columns(self) -> list[str]:
        return [self.column]

    def grammar(self) -> str:
        return 'root ::= line ("\\n" line)*\nline ::= [^\\n]+'

    def parse(self, text: str) -> Values:
        text = clean(text)
        if not text:
            raise RowError("empty answer")
        return {self.column: text}

    def render(self, values: Values) -> str:
        text = (values.get(self.column) or "").strip()
        if not text:
            raise ValueError("empty text")
        return "\n".join(line for line in text.splitlines() if line.strip())


def _none(spec: dict, problems: list[str], where: str) -> str:
    if not isinstance(spec.get("none_text"), str):
        problems.append(f"{where}: answer needs none_text = \"...\"")
    return spec.get("none_text", "None")
