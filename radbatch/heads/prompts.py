"""Prompt rendering: a head's prompt as template parts and user-text parts, kept apart.

Template parts are tokenized with special tokens enabled (so `<|im_start|>` is one control token); user
parts (report text and anything derived from it) with special tokens disabled, so a report containing
`<|im_end|>` or `[TASK: ...]` stays plain text. Training (finetune/) and inference use this one function.
"""

from __future__ import annotations

from dataclasses import dataclass

from radbatch.errors import RecipeError

LABELS = {"report": "Report", "findings": "Findings", "prior": "Prior report",
          "hypothesis": "Statement", "question": "Question"}
THINK_EMPTY = "<think>\n\n</think>\n\n"


@dataclass(frozen=True)
class Prompt:
    parts: tuple[tuple[str, bool], ...]  # (text, is_template)

    @property
    def text(self) -> str:
        return "".join(t for t, _ in self.parts)


def chat_wrap(template: str, system: str) -> tuple[str, str]:
    """(text before the user content, text after it up to the assistant's answer)."""
    if template != "chatml":
        raise RecipeError([f"Unknown chat template {template!r}. Known: chatml"])
    return (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n",
            "<|im_end|>\n<|im_start|>assistant\n")


def render(layout: str, system: str, template: str, task_id: str, instruction: str,
           fields: list[tuple[str, str]], thinking: bool = False) -> Prompt:
    """fields: (input name, text) in the head's input order; the first is the primary text.

    report_first puts the primary text right after the user turn opens, so every head of a report shares
    that prefix; task_tag_first is RadLite's `[TASK: id]` / instruction / blank line / label and text.
    """
    head, tail = chat_wrap(template, system)
    if thinking:
        tail += THINK_EMPTY
    parts: list[tuple[str, bool]] = []
    if layout == "report_first":
        parts.append((head, True))
        for i, (name, text) in enumerate(fields):
            parts += [(("" if i == 0 else "\n\n") + f"{LABELS[name]}:\n", True), (text, False)]
        parts.append((f"\n\n{instruction}{tail}", True))
    elif layout == "task_tag_first":
        parts.append((f"{head}[TASK: {task_id}]\n{instruction}\n\n", True))
        for i, (name, text) in enumerate(fields):
            parts += [(("" if i == 0 else "\n\n") + f"{LABELS[name]}:\n", True), (text, False)]
        parts.append((tail, True))
    else:
        raise RecipeError([f"Unknown prompt layout {layout!r}. Known: report_first, task_tag_first"])
    return Prompt(tuple(parts))
