"""The engine of a `kind = "rules"` member (radbatch/engines/rules): deterministic labellers behind the engine interface.

Built in each worker like LlamaEngine (engine.build_engines), fed the same Requests, returns Completions whose
text is the answer in the head's format, so parsing, columns and statuses are unchanged. The report is the
prompt's first user part (prompts.render keeps user text apart from the template), used as is.
"""

from __future__ import annotations

from radbatch.heads.models import ModelSpec

from .rules import HEADS
from .spec import Completion, Request

# Confidence hook: a rule answer has no token probabilities. A constant (or None: "not measured") goes here if
# the confidence columns (issue 17) want one for rules members; None until that is wired and calibrated on dev.
CONFIDENCE: float | None = None


class RulesEngine:
    def __init__(self, spec: ModelSpec):
        self.name = spec.name

    def complete(self, req: Request) -> Completion:
        answer = HEADS.get(req.task)
        if answer is None:  # the plan refuses this; a message naming the head only, never the report
            return Completion("", "error", f"the rules member {self.name!r} does not serve {req.task}")
        text = next((t for t, is_template in req.prompt.parts if not is_template), "")
        return Completion(answer(text), "stop")

    def complete_many(self, requests: list[Request]) -> list[Completion]:
        return [self.complete(r) for r in requests]
