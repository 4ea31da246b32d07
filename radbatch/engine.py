"""Engines: built once per worker process from plain specs, then fed whole work units.

`LlamaEngine` is the simple reference engine: one sequence at a time through llama-cpp-python, greedy,
grammar-constrained. llama.cpp reuses the KV cache for the longest common token prefix with the previous
prompt, so the heads of one report (report-first layout) prefill the report only once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from .models import ModelSpec
from .prompts import Prompt

ENGINE_KINDS = ("simple", "batched")  # batched: radbatch/engine_batched.py

# A counter shared with the pool's supervisor (a multiprocessing RawValue), bumped once per decode step by the
# engines: the supervisor tells a slow worker (the counter moves) from one stuck in a native loop (CPU time grows,
# the counter does not). None outside a pool worker.
_progress = None


def watch_progress(counter) -> None:
    global _progress
    _progress = counter


def progress_step() -> None:
    if _progress is not None:
        _progress.value += 1   # one writer (this process); the supervisor only reads


@dataclass(frozen=True)
class Request:
    row: int          # index of the row within its unit
    slot: str         # head instance key
    task: str
    model: str
    prompt: Prompt
    max_tokens: int
    confidence: bool = False   # record each token's grammar-masked probability (radbatch/confidence.py)


@dataclass(frozen=True)
class Completion:
    text: str
    finish: str       # stop | length | error
    error: str = ""
    prompt_tokens: int = 0
    generated_tokens: int = 0
    # With Request.confidence: (start byte, end byte, probability) per generated token and the end token.
    # Not compared: the engines' logits differ in the last bits, so the probabilities do too.
    steps: tuple | None = field(default=None, compare=False)
    # Field -> confidence from a member that computes its own (the rules engine); wins over steps.
    confidence: dict | None = field(default=None, compare=False)


BATCHED_ENV = "RADBATCH_BATCHED"


@dataclass(frozen=True)
class BatchSettings:
    """Tuning knobs of the batched engine (engine_batched.py); defaults measured on 2 cores, docs/performance.md.
    Users set them with RADBATCH_BATCHED (`n_parallel=16,n_batch=512`, as bench/tune.py prints it), read once on
    the driver (settings.Settings) and shipped to every worker in WorkerSpec.batch."""

    n_parallel: int = 16   # sequences generating at once (each holds a KV stream of the model's context size)
    n_prefix: int = 6      # extra KV streams for shared prefixes (system prompt, reports, findings)
    n_batch: int = 512     # most prompt tokens per llama_decode call (as LlamaEngine)

    @classmethod
    def from_extra(cls, extra: dict) -> "BatchSettings":
        """Settings by name over the defaults. Unknown names and bad values are errors."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(extra) - set(known))
        if unknown:
            raise ValueError(f"Unknown batched engine setting(s) {', '.join(unknown)} (from {BATCHED_ENV}). "
                             f"Known: {', '.join(known)}")
        values = {}
        for name, raw in extra.items():
            try:
                values[name] = int(raw)
            except ValueError:
                raise ValueError(f"batched engine setting {name} must be an integer, not {raw!r}") from None
            if values[name] < 2:
                raise ValueError(f"batched engine setting {name} must be at least 2, not {values[name]}")
        return cls(**values)

    @classmethod
    def from_text(cls, text: str) -> "BatchSettings":
        """`n_parallel=16,n_batch=512` (the RADBATCH_BATCHED syntax)."""
        out = {}
        for item in filter(None, (x.strip() for x in text.split(","))):
            name, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"{BATCHED_ENV}: expected name=value, got {item!r} (e.g. n_parallel=16,n_batch=512)")
            out[name.strip()] = value.strip()
        return cls.from_extra(out)


@dataclass(frozen=True)
class WorkerSpec:
    """Shipped to every worker (pool process or Ray actor); workers build their engines from it (never pickled
    models) and read no settings from their environment: everything they need was decided on the driver."""

    models: dict[str, ModelSpec]
    grammars: dict[str, str]   # task id -> GBNF
    threads: int
    seed: int = 0
    engine: str = "simple"
    batch: BatchSettings = field(default_factory=BatchSettings)
    # Test-only fault injection (pool.crash_if_asked, RADBATCH_TEST_CRASH_UNIT syntax); empty in production.
    test_faults: str = ""


class LlamaEngine:
    def __init__(self, spec: ModelSpec, threads: int, seed: int, grammars: dict[str, str]):
        from llama_cpp import Llama, LlamaGrammar, StoppingCriteriaList

        kwargs = dict(model_path=spec.path, n_ctx=spec.context_size, n_threads=threads,
                      n_threads_batch=threads, seed=seed, verbose=False, n_batch=512)
        if spec.adapter:
            kwargs["lora_path"] = spec.adapter
        self.llm = Llama(**kwargs)
        if spec.adapter and not self.llm._lora_adapter:
            # llama-cpp-python 0.3.36 tests the adapter pointer with `is None`, so a NULL one (llama.cpp refused
            # the adapter) is applied anyway and the first decode segfaults. Refuse it here, while loading.
            self.llm._lora_adapter = None
            raise ValueError(f"llama.cpp refused the LoRA adapter {spec.adapter} for {spec.path}: it was made for "
                             "another base model (architecture or tensor shapes differ) or is not a LoRA GGUF")
        self.n_ctx = spec.context_size
        self.add_bos = self.llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
        self.grammars = {task: LlamaGrammar.from_string(g, verbose=False) for task, g in grammars.items()}
        self.step = StoppingCriteriaList([_step])   # counts decode steps for the pool's hang check
        self.gbnf = grammars
        self._conf = None   # confidence replay: vocab, end-token mask, token buffer (built on first use)

    def tokens(self, prompt: Prompt) -> list[int]:
        ids = [self.llm.token_bos()] if self.add_bos else []
        for text, is_template in prompt.parts:
            ids += self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=is_template)
        return ids

    def complete(self, req: Request) -> Completion:
        ids = self.tokens(req.prompt)
        if len(ids) + req.max_tokens > self.n_ctx:
            return Completion("", "error", f"prompt has {len(ids)} tokens + {req.max_tokens} to generate, "
                              f"over the model context of {self.n_ctx}: report too long (raise context_size)",
                              len(ids))
        progress_step()
        recorder = self._recorder(req.task) if req.confidence else None
        try:
            out = self.llm.create_completion(ids, max_tokens=req.max_tokens, temperature=0.0, top_k=1,
                                             repeat_penalty=1.0, grammar=self.grammars[req.task], seed=0,
                                             stopping_criteria=self.step,
                                             logits_processor=[recorder] if recorder else None)
        finally:
            if recorder:
                self._conf[0].llama_sampler_free(recorder.sampler)
        choice = out["choices"][0]
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        usage = out.get("usage") or {}
        steps = recorder.result(choice["text"], finish) if recorder else None
        return Completion(choice["text"], finish, "", len(ids), usage.get("completion_tokens", 0), steps)

    def _recorder(self, task: str):
        """A fresh grammar replay for one request (radbatch/confidence.py, the whole vocabulary masked)."""
        import llama_cpp as L
        import numpy as np
        from .confidence import StepRecorder, eog_mask
        if self._conf is None:
            vocab = L.llama_model_get_vocab(self.llm._model.model)
            n = self.llm.n_vocab()
            buf = (L.llama_token_data * n)()
            view = np.frombuffer(buf, dtype=np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)]))
            self._conf = (L, vocab, eog_mask(L, np, vocab, n), buf, view)
        L, vocab, eog, buf, view = self._conf
        sampler = L.llama_sampler_init_grammar(vocab, self.gbnf[task].encode(), b"root")
        return StepRecorder(L, np, vocab, sampler, eog, buf, view)


def _step(_ids, _logits) -> bool:
    """llama-cpp-python calls this once per generated token: a decode step; it never stops generation."""
    progress_step()
    return False


def build_engines(spec: WorkerSpec, needed: set[str]) -> dict[str, LlamaEngine]:
    if spec.engine not in ENGINE_KINDS:
        raise ValueError(f"Unknown engine {spec.engine!r}. Known: {', '.join(ENGINE_KINDS)}")
    rules = {name for name in needed if spec.models[name].is_rules}  # radbatch/engine_rules.py, either engine
    engines: dict = {}
    if rules:
        from .engine_rules import RulesEngine
        engines = {name: RulesEngine(spec.models[name]) for name in sorted(rules)}
    needed = set(needed) - rules
    if spec.engine == "batched":
        from .engine_batched import BatchedEngine
        return {**engines, **{name: BatchedEngine(spec.models[name], spec.threads, spec.seed, spec.grammars,
                                                  spec.batch) for name in sorted(needed)}}
    return {**engines, **{name: LlamaEngine(spec.models[name], spec.threads, spec.seed, spec.grammars)
                          for name in sorted(needed)}}


def run_unit(engines: dict, requests: list[Request]) -> list[Completion]:
    """A whole work unit (reports x heads). Grouped by model, then in request order (report-major),
    so consecutive prompts share the report prefix."""
    out: list[Completion | None] = [None] * len(requests)
    for name, engine in engines.items():
        mine = [i for i, req in enumerate(requests) if req.model == name]
        if hasattr(engine, "complete_many"):  # the batched engine takes the model's whole share at once
            for i, comp in zip(mine, engine.complete_many([requests[i] for i in mine])):
                out[i] = comp
        else:
            for i in mine:
                out[i] = engine.complete(requests[i])
                progress_step()
    return [c if c is not None else Completion("", "error", "no engine for model") for c in out]
