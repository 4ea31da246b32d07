"""Does the batched engine say what the simple engine says? Head by head, on the sample reports.

    .venv/bin/python bench/agreement.py [--reports 16] [--threads 2] [--n-parallel 16] [--n-batch 512] \
        [--model smollm2-ft-b] [--adapter A.gguf]   # a models.toml name (default: the embedded base model)

Both engines run greedy and grammar-constrained on the same work units (`radbatch annotate`'s own requests
for every head). llama.cpp does not promise identical logits for different batch shapes; the batched engine
computes each sequence the way the simple engine does (radbatch/engines/batched.py says how), except the
output layer, which sees several rows at once: its logits differ in the last bits, so an exact tie can flip. For every output that differs the script prints the first differing token and the margin there:
the simple engine's logit for its own token minus its logit for the batched engine's token (a replay of
the simple engine up to that token). Margins of a few hundredths are numerical ties; a large margin would
be a bug. Exits 1 when fewer than --require (default 98%) of the outputs are identical.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload  # noqa: E402


def _divergence(simple, req, batched_tokens: list[int]):
    """(token index, simple token, batched token, margin) at the first token where the engines differ."""
    import numpy as np
    import llama_cpp as L

    llm = simple.llm
    ids = simple.tokens(req.prompt)
    eos = llm.token_eos()
    k = 0
    for tok in llm.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0, grammar=simple.grammars[req.task]):
        other = batched_tokens[k] if k < len(batched_tokens) else eos
        if tok != other:
            logits = np.ctypeslib.as_array(L.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
            return k, tok, other, float(logits[tok] - logits[other])
        if L.llama_vocab_is_eog(llm._model.vocab, tok) or k + 1 >= req.max_tokens:
            break
        k += 1
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reports", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-parallel", type=int)
    ap.add_argument("--n-batch", type=int)
    ap.add_argument("--require", type=float, default=98.0, help="percent of identical outputs required")
    ap.add_argument("--model", default=workload.MODEL, help="models.toml name (an adapter member: smollm2-ft-b)")
    ap.add_argument("--adapter", help="a GGUF LoRA adapter for --model instead of its own")
    args = ap.parse_args(argv)

    from radbatch.engines.simple import LlamaEngine
    from radbatch.engines.build import run_unit
    from radbatch.engines.batched import BatchedEngine, BatchSettings

    path, source = workload.archive(args.reports)
    plan, units = workload.units(path, model=args.model, adapter=args.adapter)
    (name, spec), = plan.models.items()
    grammars = {h.recipe.id: h.grammar() for h in plan.heads}
    extra = {k: v for k, v in (("n_parallel", args.n_parallel), ("n_batch", args.n_batch)) if v}
    settings = BatchSettings(**extra)
    n_req = sum(len(u.requests) for u in units)
    print(f"{args.reports} reports from {source}; {len(units)} units, {n_req} head outputs; model {name}; "
          f"{args.threads} threads; batched {settings}")

    batched = BatchedEngine(spec, args.threads, 0, grammars, settings)
    batched.trace = {}
    t0 = time.perf_counter()
    b_out, b_tok = [], []
    for u in units:
        batched.trace.clear()
        b_out.append(batched.complete_many(u.requests))
        b_tok.append(dict(batched.trace))
    tb = time.perf_counter() - t0
    batched.close()

    simple = LlamaEngine(spec, args.threads, 0, grammars)
    t0 = time.perf_counter()
    s_out = [run_unit({name: simple}, u.requests) for u in units]
    ts = time.perf_counter() - t0
    print(f"simple engine {ts:.1f} s, batched engine {tb:.1f} s (wall, this machine's load included)")

    per_head = defaultdict(lambda: [0, 0])
    diffs = []
    for ui, u in enumerate(units):
        for ri, (req, s, b) in enumerate(zip(u.requests, s_out[ui], b_out[ui])):
            same = (s.text, s.finish, s.error) == (b.text, b.finish, b.error)
            per_head[req.slot][0] += same
            per_head[req.slot][1] += 1
            if not same:
                diffs.append((u, req, s, b, b_tok[ui].get(ri, [])))
    total = sum(n for _, n in per_head.values())
    same = sum(k for k, _ in per_head.values())
    print(f"\n{'head':<24} {'identical':>10} {'of':>4}")
    for head, (k, n) in per_head.items():
        print(f"{head:<24} {k:>10} {n:>4}  {100 * k / n:6.1f}%")
    pct = 100 * same / total if total else 100.0
    print(f"{'all heads':<24} {same:>10} {total:>4}  {pct:6.1f}%  (required: {args.require:.0f}%)")
    for u, req, s, b, toks in diffs:
        print(f"\nDIFF unit {u.unit_id} row {req.row} {req.slot}: simple {s.finish} {s.text[:70]!r} | "
              f"batched {b.finish} {b.text[:70]!r} {b.error}")
        div = _divergence(simple, req, toks) if b.finish != "error" else None
        if div:
            k, st, bt, margin = div
            piece = lambda t: simple.llm.detokenize([t]).decode("utf-8", "replace")  # noqa: E731
            print(f"  first differing token #{k}: simple {piece(st)!r} vs batched {piece(bt)!r}; "
                  f"logit margin {margin:.4f}")
    return 0 if pct >= args.require else 1


if __name__ == "__main__":
    sys.exit(main())
