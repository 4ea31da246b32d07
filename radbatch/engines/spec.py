"""What the driver ships to every worker and what engines exchange: WorkerSpec (models, grammars, threads,
batched-engine settings, the test-only fault channel), Request and Completion, and the decode-step counter the
pool's watchdog reads. Plain data, no llama.cpp: every engine and executor imports it, it imports no engine."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from radbatch.heads.models import ModelSpec
from radbatch.heads.prompts import Prompt

ENGINE_KINDS = ("simple", "batched")  # batched: radbatch/engines/batched.py


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
    confidence: bool = False   # record each token's grammar-masked probability (radbatch/engines/confidence.py)


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


STREAM_STEP = 256   # the batched engine sizes KV streams in these steps: llama.cpp pads the cells attention reads to 256


@dataclass(frozen=True)
class BatchSettings:
    """Tuning knobs of the batched engine (engine_batched.py); defaults measured on 2 cores, docs/performance.md.
    Users set them with RADBATCH_BATCHED (`n_parallel=16,n_batch=512`, as bench/tune.py prints it), read once on
    the driver (settings.Settings) and shipped to every worker in WorkerSpec.batch."""

    n_parallel: int = 16   # sequences generating at once (each holds a KV stream of the model's context size)
    n_prefix: int = 6      # extra KV streams for shared prefixes (system prompt, reports, findings)
    n_batch: int = 512     # most prompt tokens per llama_decode call (as LlamaEngine)
    kv_cells: int = 0      # cap on a KV stream's cells; 0: streams grow to the longest request, up to context_size
    draft: int = 0         # prompt-lookup draft tokens checked per step and sequence (0: off; engines/batched.py)

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
            lowest = 0 if name in ("kv_cells", "draft") else 2   # 0: no cap, no drafts
            if values[name] < lowest:
                raise ValueError(f"batched engine setting {name} must be at least {lowest}, not {values[name]}")
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


def stream_cap(context_size: int, settings: BatchSettings) -> int:
    """The most cells one of the batched engine's KV streams may grow to: the model's context, or kv_cells
    rounded up to STREAM_STEP."""
    if not settings.kv_cells:
        return context_size
    return min(context_size, -(-settings.kv_cells // STREAM_STEP) * STREAM_STEP)
