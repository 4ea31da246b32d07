"""Answer kinds made of lines: CheXpert labels, RadGraph entities, temporal changes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from radbatch.errors import RowError

from .answers import Values, _none, clean, lit


@dataclass(frozen=True)
class LabelsAnswer:
    """`<Label>: <value>` lines for the mentioned labels, in table order; unmentioned labels are null."""

    labels: tuple[tuple[str, str], ...]  # (display name, column)
    values: tuple[str, ...]
    only_positive: tuple[str, ...]
    none_text: str

    @classmethod
    def build(cls, spec: dict, problems: list[str], where: str) -> "LabelsAnswer":
        labels = spec.get("labels") or {}
        values = spec.get("values") or []
        if not labels or not values:
            problems.append(f"{where}: answer kind 'labels' needs a [answer.labels] table and values = [...]")
        only = spec.get("only_positive", [])
        for name in only:
            if name not in labels:
                problems.append(f"{where}: only_positive names unknown label {name!r}")
        return cls(tuple(labels.items()), tuple(values), tuple(only), _none(spec, problems, where))

    def columns(self) -> list[str]:
        return sorted(col for _, col in self.labels)

    def _allowed(self, name: str) -> tuple[str, ...]:
        return (self.values[0],) if name in self.only_positive else self.values

    def grammar(self) -> str:
        # s_i = line_i ("\n" s_{i+1})? | s_{i+1}: a non-empty subsequence of the labels, in table order.
        n = len(self.labels)
        rules = [f"root ::= {lit(self.none_text)} | s0"]
        for i, (name, _) in enumerate(self.labels):
            line = f"{lit(name + ': ')} ({' | '.join(lit(v) for v in self._allowed(name))})"
            if i == n - 1:
                rules.append(f"s{i} ::= {line}")
            else:
                rules.append(f's{i} ::= {line} ("\\n" s{i + 1})? | s{i + 1}')
        return "\n".join(rules)

    def parse(self, text: str) -> Values:
        text = clean(text)
        out: Values = {col: None for _, col in self.labels}
        if text == self.none_text:
            return out
        order = [name for name, _ in self.labels]
        last = -1
        for n, line in enumerate(text.split("\n"), 1):
            name, sep, value = line.partition(": ")
            if not sep or name not in order:
                raise RowError(f"line {n}: unknown label")
            if order.index(name) <= last:
                raise RowError(f"line {n}: label repeated or out of order")
            if value not in self._allowed(name):
                raise RowError(f"line {n}: value not allowed for this label")
            last = order.index(name)
            out[dict(self.labels)[name]] = value
        return out

    def render(self, values: Values) -> str:
        lines = [f"{name}: {values[col]}" for name, col in self.labels if values.get(col) is not None]
        return "\n".join(lines) if lines else self.none_text


_ENTITY = re.compile(r"^- ([^\n\[\]]+) \[([A-Z-]+)\]$")
_CHANGE = re.compile(r"^- \[([A-Za-z ]+)\] ([^\n()]+) \(related to: ([^\n()]+)\)$")


def _list_parse(text: str, none_text: str, pattern: re.Pattern, what: str) -> list[tuple[str, ...]]:
    text = clean(text)
    if text == none_text:
        return []
    items = []
    for n, line in enumerate(text.split("\n"), 1):
        m = pattern.match(line)
        if not m:
            raise RowError(f"line {n}: not a valid {what} line")
        items.append(tuple(g.strip() for g in m.groups()))
    return items


def _check_free(value: str, forbidden: str) -> str:
    value = (value or "").strip()
    if not value or any(c in value for c in forbidden + "\n"):
        raise ValueError(f"text is empty or contains one of {forbidden!r}")
    return value


@dataclass(frozen=True)
class EntitiesAnswer:
    """`- <text> [<LABEL>]` lines (RadGraph labels), or the none text."""

    labels: tuple[str, ...]
    none_text: str
    column: str = "entities"

    @classmethod
    def build(cls, spec: dict, problems: list[str], where: str) -> "EntitiesAnswer":
        if not spec.get("labels"):
            problems.append(f"{where}: answer kind 'entities' needs labels = [...]")
        return cls(tuple(spec.get("labels", [])), _none(spec, problems, where))

    def columns(self) -> list[str]:
        return [self.column]

    def grammar(self) -> str:
        labels = " | ".join(lit(x) for x in self.labels)
        return (f'root ::= {lit(self.none_text)} | item ("\\n" item)*\n'
                f'item ::= "- " [^\\n\\[\\] ] [^\\n\\[\\]]* " [" ({labels}) "]"')

    def parse(self, text: str) -> Values:
        items = _list_parse(text, self.none_text, _ENTITY, "entity")
        for text_, label in items:
            if label not in self.labels:
                raise RowError(f"unknown entity label {label!r}")
        return {self.column: [{"text": t, "label": lab} for t, lab in items]}

    def render(self, values: Values) -> str:
        items = values.get(self.column) or []
        lines = [f"- {_check_free(e['text'], '[]')} [{e['label']}]" for e in items]
        return "\n".join(lines) if lines else self.none_text


@dataclass(frozen=True)
class ChangesAnswer:
    """`- [<Class>] <cue> (related to: <entity>)` lines, or the none text."""

    classes: tuple[tuple[str, str], ...]  # (display, value)
    none_text: str
    column: str = "changes"

    @classmethod
    def build(cls, spec: dict, problems: list[str], where: str) -> "ChangesAnswer":
        if not spec.get("classes"):
            problems.append(f"{where}: answer kind 'changes' needs an [answer.classes] table")
        return cls(tuple((spec.get("classes") or {}).items()), _none(spec, problems, where))

    def columns(self) -> list[str]:
        return [self.column]

    def grammar(self) -> str:
        classes = " | ".join(lit(d) for d, _ in self.classes)
        return (f'root ::= {lit(self.none_text)} | item ("\\n" item)*\n'
                f'item ::= "- [" ({classes}) "] " free " (related to: " free ")"\n'
                'free ::= [^\\n() ] [^\\n()]*')

    def parse(self, text: str) -> Values:
        display = dict(self.classes)
        out = []
        for cls_, cue, entity in _list_parse(text, self.none_text, _CHANGE, "change"):
            if cls_ not in display:
                raise RowError(f"unknown change class {cls_!r}")
            out.append({"change": display[cls_], "cue": cue, "entity": entity})
        return {self.column: out}

    def render(self, values: Values) -> str:
        back = {v: d for d, v in self.classes}
        lines = [f"- [{back[c['change']]}] {_check_free(c['cue'], '()')} (related to: "
                 f"{_check_free(c['entity'], '()')})" for c in values.get(self.column) or []]
        return "\n".join(lines) if lines else self.none_text
