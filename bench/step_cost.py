"""Issue 16, item 1: what one llama_decode call costs when it verifies w tokens in each of s sequences.

    bench/exclusive env PYTHONPATH=$PWD .venv/bin/python bench/step_cost.py [--model smollm2] [--threads 2] \
        [--streams 1,2,4,8,16] [--widths 1-16] [--prompt 320] [--repeats 5] [--json OUT]

The batched engine's own context (radbatch/engines/batched.py: one KV stream of context_size cells per sequence,
kv_unified off, flash attention off, n_batch 512) on a models.toml model. Each of s sequences first holds a
`--prompt`-token prompt (a sample report's tokens, repeated to length), as a sequence has when it starts to
generate. Then, for each width w, one call decodes w tokens per sequence at the next positions with logits for
every token (what verifying a w-1 token draft plus the next token needs); the cells are removed after each call,
so every call sees the same cache. The median of --repeats calls is printed per (s, w), with the cost per
token and the ratio to w = 1 ("a step of w costs x steps of 1"): drafts pay only where that ratio stays well
below w.

Unequal widths: llama.cpp splits a batch into micro-batches (ubatches), and with one KV stream per sequence
(split_equal) every sequence in a ubatch contributes the same number of tokens. So a call where some sequences
verify w tokens and others 1 can take more than one graph compute. The script counts graph computes exactly
(llama.cpp's eval callback sees the output tensor `result_output` once per compute; counted in separate calls,
since observing a tensor changes the scheduler's splits) for half the sequences at w, half at 1.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _widths(text: str) -> list[int]:
    if "-" in text:
        lo, hi = map(int, text.split("-"))
        return list(range(lo, hi + 1))
    return [int(x) for x in text.split(",")]


class Bench:
    """A llama.cpp context shaped as the batched engine's, with n_seq streams holding a prompt each."""

    def __init__(self, path: str, threads: int, n_seq: int, context: int, prompt: list[int], count: bool):
        import logging

        import llama_cpp as L
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)   # as the engine: no load chatter
        self.L, self.n_seq, self.prompt = L, n_seq, prompt
        L.llama_backend_init()
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = 0
        self.model = L.llama_model_load_from_file(path.encode(), mp)
        cp = L.llama_context_default_params()
        cp.n_ctx, cp.n_seq_max, cp.kv_unified = n_seq * context, n_seq, False
        cp.n_batch = cp.n_ubatch = 512
        cp.n_threads = cp.n_threads_batch = threads
        cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.computes = 0
        if count:   # one call per graph compute: the scheduler asks about result_output once per compute
            ggml = ctypes.CDLL(str(Path(L.__file__).parent / "lib" / "libggml-base.so"))
            ggml.ggml_get_name.restype, ggml.ggml_get_name.argtypes = ctypes.c_char_p, [ctypes.c_void_p]

            def seen(tensor, ask, _user):
                if ask and ggml.ggml_get_name(tensor) == b"result_output":
                    self.computes += 1
                return False
            self._cb = L.ggml_backend_sched_eval_callback(seen)
            cp.cb_eval, cp.cb_eval_user_data = self._cb, None
        self.ctx = L.llama_init_from_model(self.model, cp)
        self.mem = L.llama_get_memory(self.ctx)
        self.batch = L.llama_batch_init(512, 0, 1)
        for seq in range(n_seq):   # each prompt in its own calls, as the engine prefills
            for i in range(0, len(prompt), 256):
                self._decode([(t, i + j, seq, False) for j, t in enumerate(prompt[i:i + 256])])

    def _decode(self, items) -> float:
        b = self.batch
        for j, (tok, pos, seq, want) in enumerate(items):
            b.token[j], b.pos[j], b.n_seq_id[j], b.logits[j] = tok, pos, 1, want
            b.seq_id[j][0] = seq
        b.n_tokens = len(items)
        t0 = time.perf_counter()
        rc = self.L.llama_decode(self.ctx, b)
        dt = time.perf_counter() - t0
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc} for {len(items)} tokens")
        return dt

    def step(self, widths: list[int]) -> float:
        """One call: sequence i verifies widths[i] tokens after its prompt; then those cells are dropped."""
        p = len(self.prompt)
        items = [(self.prompt[(p + k) % p], p + k, seq, True) for seq, w in enumerate(widths) for k in range(w)]
        dt = self._decode(items)
        for seq in range(len(widths)):
            self.L.llama_memory_seq_rm(self.mem, seq, p, -1)
        return dt

    def close(self) -> None:
        self.L.llama_batch_free(self.batch)
        self.L.llama_free(self.ctx)
        self.L.llama_model_free(self.model)


def _prompt_tokens(path: str, n: int) -> list[int]:
    import llama_cpp as L
    import pyarrow.parquet as pq
    text = pq.read_table(REPO / "sample_data" / "reports.parquet", columns=["report_text"])[0][0].as_py()
    mp = L.llama_model_default_params()
    mp.vocab_only = True
    model = L.llama_model_load_from_file(path.encode(), mp)
    vocab = L.llama_model_get_vocab(model)
    buf = (L.llama_token * 4096)()
    data = text.encode()
    k = L.llama_tokenize(vocab, data, len(data), buf, 4096, True, False)
    L.llama_model_free(model)
    toks = list(buf[:k])
    return (toks * (n // len(toks) + 1))[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2", help="a models.toml name (default: the embedded base)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--streams", default="1,2,4,8,16")
    ap.add_argument("--widths", default="1-16")
    ap.add_argument("--prompt", type=int, default=320, help="tokens already in each sequence's stream")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    from radbatch.heads.models import load_models, materialise
    from radbatch.heads.recipes import load_recipes
    spec = materialise(load_models(REPO / "recipes" / "models.toml", set(load_recipes().profiles))[a.model])
    prompt = _prompt_tokens(spec.path, a.prompt)
    streams, widths = _widths(a.streams), _widths(a.widths)
    print(f"model {a.model} ({Path(spec.path).name}), {a.threads} threads, prompt {a.prompt} tokens per "
          f"sequence, median of {a.repeats} calls (ms)")
    rows = []
    print(f"{'s':>3} " + " ".join(f"w={w:<5}" for w in widths))
    for s in streams:
        b = Bench(spec.path, a.threads, s, spec.context_size, prompt, count=False)
        b.step([1] * s)   # warm-up
        ms = []
        for w in widths:
            ms.append(statistics.median(b.step([w] * s) for _ in range(a.repeats)) * 1000)
        b.close()
        rows.append({"streams": s, "ms": dict(zip(widths, ms))})
        print(f"{s:>3} " + " ".join(f"{m:<7.1f}" for m in ms))
    print("\nratio to w=1 (a call verifying w tokens per sequence costs this many one-token calls):")
    for r in rows:
        base = r["ms"][widths[0]]
        print(f"{r['streams']:>3} " + " ".join(f"{r['ms'][w] / base:<7.2f}" for w in widths))
    print("\ngraph computes per call, half the sequences at w and half at 1 (split_equal):")
    counts = {}
    for s in [x for x in streams if x >= 2]:
        b = Bench(spec.path, a.threads, s, spec.context_size, prompt, count=True)
        line = []
        for w in widths:
            b.computes = 0
            b.step([w] * (s // 2) + [1] * (s - s // 2))
            equal_start = b.computes
            b.computes = 0
            b.step([w] * s)
            line.append((equal_start, b.computes))
        b.close()
        counts[s] = line
        print(f"{s:>3} " + " ".join(f"{u}/{e:<5}" for u, e in line) + "   (unequal/equal)")
    if a.json:
        a.json.write_text(json.dumps({"model": a.model, "threads": a.threads, "prompt": a.prompt, "rows": rows,
                                      "computes": {str(k): v for k, v in counts.items()}}, indent=1))


if __name__ == "__main__":
    main()
