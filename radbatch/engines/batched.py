"""The batched engine: a whole work unit decoded together on llama.cpp's low-level API.

Why it is faster than `LlamaEngine` on CPUs:
  * shared prefixes are prefilled once. The unit's prompts are arranged in a token trie (system prompt,
    then per report "Report:\\n<text>", per findings section, ...); every branch point of at least
    MIN_SHARED tokens is decoded once in its own sequence and copied to every prompt below it
    (`llama_memory_seq_cp`), which then decodes only its own tail;
  * all generating sequences advance in one `llama_decode` call per step (continuous batching: a finished
    sequence's slot is refilled at once), so the weights are read once per step for all of them;
  * grammar constraints cost one cheap check per token: the unconstrained greedy token is tested against the
    grammar alone, then the 64 best tokens, and only if none fits is the whole vocabulary masked. The result
    is the token masking first would give (the argmax of the allowed tokens), as llama-server does.

Same output as the simple engine. llama.cpp's CPU kernels are not batch-invariant: a matrix product with one
token takes another code path than one with several (llamafile's tinyBLAS from 2 tokens), and in a
quantized model the activation quantization turns the last-bit difference into logit changes of ~0.5, which
flips greedy choices of a small model. So the engine computes every token of a sequence the way the simple
engine does: each sequence has its own KV stream (non-unified cache; a prefix is copied stream to stream,
so its cells keep their indices), a generation step feeds each stream one token (as the simple engine's
one-token decode), and a prompt tail is decoded in its own call (several tokens, as the simple engine's
prompt evaluation). Only the output layer sees several rows where the simple engine has one: logits then
differ in the last bits, which changes a greedy choice only at an exact tie. bench/agreement.py measures it.

Output follows `LlamaEngine` (create_completion) token for token: the same tokenization, the same stop rule
(an end-of-generation token ends with finish "stop" and is not counted), the same max_tokens rule (including
its deferral while a UTF-8 character is incomplete), text decoded with errors ignored. Greedy and
deterministic for a fixed unit.

A grammar dead end (no token allowed) ends only that sequence, with finish "error"; llama.cpp would abort
the process if a masked token were accepted, so a token is accepted only after the grammar allowed it.
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from radbatch.heads.models import ModelSpec
from radbatch.heads.prompts import Prompt

# BatchSettings lives with WorkerSpec, which ships it to the workers; importable from here as before (bench/).
from .spec import STREAM_STEP, BatchSettings, Completion, Request, progress_step, stream_cap

MIN_SHARED = 8  # a shared prefix shorter than this is decoded per sequence (not worth a sequence of its own)
TOP_K = (64, 1024)  # a grammar-rejected argmax: these many best tokens are tried before masking the vocabulary
STATS = ("steps", "prompt_calls", "decode_s", "prompt_s", "copies", "sample_s", "prompt_tokens", "gen_tokens",
         "top_masks", "full_masks", "full_mask_s", "run_s", "confidence_s", "contexts", "drafted",
         "accepted", "draft_calls")
DRAFT_NGRAMS = (3, 2)   # prompt lookup: the longest of these suffixes of the text so far found in the prompt


@dataclass(eq=False)
class _Node:
    """A shared prefix: prompt tokens [start, end) decoded once in sequence `seq`."""

    parent: "_Node | None"
    start: int
    tokens: list[int]
    children: int = 0        # prefixes and prompts below it that have not copied it yet
    seq: int = -1
    filled: int = 0
    state: str = "new"       # new | prefill | ready | done

    @property
    def end(self) -> int:
        return self.start + len(self.tokens)


@dataclass(eq=False)
class _Seq:
    """One request: its own prompt tail, then generation."""

    index: int
    req: Request
    parent: _Node | None
    tokens: list[int]        # prompt tokens after the parent's end
    start: int
    n_prompt: int
    seq: int = -1
    filled: int = 0
    sampler: object = None
    out: list[int] = field(default_factory=list)
    text: bytearray = field(default_factory=bytearray)
    multibyte_fix: int = 0
    steps: list = field(default_factory=list)   # with req.confidence: (start byte, end byte, probability)
    prompt: list[int] = field(default_factory=list)   # the whole prompt (prompt-lookup drafts read it)

    @property
    def pos(self) -> int:
        return self.start + self.filled + len(self.out)


class BatchedEngine:
    def __init__(self, spec: ModelSpec, threads: int, seed: int, grammars: dict[str, str],
                 settings: BatchSettings | None = None):
        import llama_cpp as L

        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # as Llama(verbose=False)
        self.L = L
        self.settings = settings or BatchSettings()
        self.n_ctx = spec.context_size           # per request, as the simple engine
        self._stack: list = []
        L.llama_backend_init()
        mparams = L.llama_model_default_params()
        mparams.n_gpu_layers = 0
        mparams.load_mode = L.LLAMA_LOAD_MODE_NONE if spec.adapter else L.LLAMA_LOAD_MODE_MMAP  # as Llama
        self.model = L.llama_model_load_from_file(spec.path.encode(), mparams)
        if not self.model:   # the messages of Llama() and LlamaEngine, so both engines fail alike
            raise ValueError(f"Failed to load model from file: {spec.path}")
        self._stack.append(lambda: L.llama_model_free(self.model))
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.add_bos = self._meta("tokenizer.ggml.add_bos_token") == "true"
        self.bos = L.llama_vocab_bos(self.vocab)
        s = self.settings
        self.n_seq = min(s.n_parallel + s.n_prefix, L.llama_max_parallel_sequences())
        self.n_parallel = min(s.n_parallel, self.n_seq - 1)
        self.n_batch = s.n_batch
        self.batch_cap = max(self.n_batch, self.n_parallel)   # tokens one decode call (and its batch) may hold
        self.threads = threads
        self.max_stream = stream_cap(spec.context_size, s)   # what a stream may grow to
        self.ctx = self._adapter = None
        if spec.adapter:
            self._load_adapter(spec)
        self.stats = dict.fromkeys(STATS, 0.0)          # where the time goes (bench/throughput.py prints it)
        self.stream = 0
        self._make_context(STREAM_STEP * 2)             # grown by complete_many to the longest request seen
        self.batch = L.llama_batch_init(self.batch_cap, 0, 1)
        self._stack.append(lambda: L.llama_batch_free(self.batch))
        self.grammars = {task: self._grammar(task, g) for task, g in grammars.items()}
        self.trace: dict[int, list[int]] | None = None  # set to {} to keep each request's tokens (bench/agreement.py)
        self.gbnf = grammars
        self._eog = self._pieces = None                 # for confidence, built on first use:
        self._universe: dict = {}                       # end-token mask, token texts, task -> grammar's tokens
        self._arrays()

    # -- set-up ---------------------------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(256)
        n = self.L.llama_model_meta_val_str(self.model, key.encode(), buf, 256)
        return buf.value.decode() if n >= 0 else None

    def _load_adapter(self, spec: ModelSpec) -> None:
        """As Llama(lora_path=...): one adapter at scale 1 (applied to each context _make_context creates). A
        NULL adapter (llama.cpp refused it) is an error here, while loading, never applied."""
        L = self.L
        adapter = L.llama_adapter_lora_init(self.model, spec.adapter.encode())
        if not adapter:
            raise ValueError(f"llama.cpp refused the LoRA adapter {spec.adapter} for {spec.path}: it was made for "
                             "another base model (architecture or tensor shapes differ) or is not a LoRA GGUF")
        self._stack.append(lambda: L.llama_adapter_lora_free(adapter))
        self._adapter, self._adapter_path = adapter, spec.adapter

    def _make_context(self, cells: int) -> None:
        """(Re)create the context with n_seq KV streams of `cells` cells each (a multiple of STREAM_STEP, at most
        max_stream). KV memory is n_seq x cells x the model's bytes per cell, so streams are sized to the longest
        request seen (complete_many grows them), not to the model's context. Outputs do not depend on the stream
        size: attention covers a stream's used cells rounded up to llama.cpp's padding (256), which a stream of
        a multiple of 256 cells always holds (tests/test_batched.py compares grown and full-size streams)."""
        L = self.L
        cells = min(self.max_stream, -(-cells // STREAM_STEP) * STREAM_STEP)
        if self.ctx is not None:
            L.llama_free(self.ctx)
            self.ctx = None
        cparams = L.llama_context_default_params()
        cparams.n_ctx = self.n_seq * cells   # one stream of `cells` cells per sequence
        cparams.n_batch = cparams.n_ubatch = self.batch_cap
        cparams.n_seq_max = self.n_seq
        cparams.n_threads = cparams.n_threads_batch = self.threads
        cparams.kv_unified = False
        cparams.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED   # as Llama(flash_attn=False)
        self.ctx = L.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise ValueError(f"Failed to create llama_context ({self.n_seq} KV streams of {cells} cells)")
        if self._adapter is not None:
            adapters = (L.llama_adapter_lora_p_ctypes * 1)(self._adapter)
            scales = (ctypes.c_float * 1)(1.0)
            if L.llama_set_adapters_lora(self.ctx, adapters, 1, scales):
                raise ValueError(f"llama.cpp could not apply the LoRA adapter {self._adapter_path}")
        self.mem = L.llama_get_memory(self.ctx)
        self.stream = cells
        self.stats["contexts"] += 1

    def _grammar(self, task: str, gbnf: str):
        smpl = self.L.llama_sampler_init_grammar(self.vocab, gbnf.encode(), b"root")
        if not smpl:
            raise ValueError(f"the {task} grammar does not parse in llama.cpp")
        self._stack.append(lambda: self.L.llama_sampler_free(smpl))
        return smpl

    def _arrays(self) -> None:
        import numpy as np
        L = self.L
        self.np = np
        self._full = (L.llama_token_data * self.n_vocab)()
        self._full_view = np.frombuffer(self._full, dtype=np.dtype(
            [("id", np.int32), ("logit", np.float32), ("p", np.float32)]))
        self._ids = np.arange(self.n_vocab, dtype=np.int32)
        self._full_arr = L.llama_token_data_array(self._full, self.n_vocab, -1, False)
        dtype = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
        self._top = (L.llama_token_data * TOP_K[-1])()
        self._top_view = np.frombuffer(self._top, dtype=dtype)
        self._top_arr = L.llama_token_data_array(self._top, TOP_K[-1], -1, False)
        self._one = (L.llama_token_data * 1)()
        self._one_arr = L.llama_token_data_array(self._one, 1, -1, False)
        self._piece = ctypes.create_string_buffer(256)
        b, n = self.batch, self.batch_cap
        self._b_token = np.ctypeslib.as_array(b.token, shape=(n,))
        self._b_pos = np.ctypeslib.as_array(b.pos, shape=(n,))
        self._b_nseq = np.ctypeslib.as_array(b.n_seq_id, shape=(n,))
        self._b_logits = np.ctypeslib.as_array(ctypes.cast(b.logits, ctypes.POINTER(ctypes.c_int8)), shape=(n,))
        self._b_seq = [b.seq_id[i] for i in range(n)]
        self._b_nseq[:] = 1

    def close(self) -> None:
        if getattr(self, "ctx", None) is not None:   # before the adapter and the model it uses
            self.L.llama_free(self.ctx)
            self.ctx = None
        while self._stack:
            self._stack.pop()()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- tokens ---------------------------------------------------------------------------------------------
    def _tokenize(self, text: str, special: bool) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (self.L.llama_token * cap)()
        n = self.L.llama_tokenize(self.vocab, data, len(data), buf, cap, False, special)
        if n < 0:
            cap = -n
            buf = (self.L.llama_token * cap)()
            n = self.L.llama_tokenize(self.vocab, data, len(data), buf, cap, False, special)
        return list(buf[:n])

    def tokens(self, prompt: Prompt) -> list[int]:
        """The same ids as LlamaEngine.tokens: template parts with special tokens, user text without."""
        ids = [self.bos] if self.add_bos else []
        for text, is_template in prompt.parts:
            ids += self._tokenize(text, is_template)
        return ids

    def _piece_of(self, token: int) -> bytes:
        n = self.L.llama_token_to_piece(self.vocab, token, self._piece, 256, 0, False)
        return self._piece.raw[:max(n, 0)]

    # -- the unit -------------------------------------------------------------------------------------------
    def complete_many(self, requests: list[Request]) -> list[Completion]:
        out: list[Completion | None] = [None] * len(requests)
        ids = []
        for i, req in enumerate(requests):
            toks = self.tokens(req.prompt)
            if len(toks) + req.max_tokens > self.n_ctx:
                out[i] = Completion("", "error", f"prompt has {len(toks)} tokens + {req.max_tokens} to generate, "
                                    f"over the model context of {self.n_ctx}: report too long (raise context_size)",
                                    len(toks))
            elif len(toks) + req.max_tokens > self.max_stream:
                out[i] = Completion("", "error", f"prompt has {len(toks)} tokens + {req.max_tokens} to generate, "
                                    f"over the KV stream cap of {self.max_stream} cells (RADBATCH_BATCHED kv_cells):"
                                    " raise kv_cells or leave it unset", len(toks))
            else:
                ids.append((i, toks))
        need = max((len(toks) + requests[i].max_tokens for i, toks in ids), default=0)
        if need > self.stream:   # streams grow to the longest request seen, never shrink (the KV is empty here)
            self._make_context(need)
        if ids:
            run = _Run(self, requests, ids, out)
            run.run()
            if self.trace is not None:
                self.trace.update(run.tokens)
        return [c if c is not None else Completion("", "error", "batched engine lost this request") for c in out]

    def complete(self, req: Request) -> Completion:
        return self.complete_many([req])[0]


def prefix_tree(prompts: list[tuple[int, list[int]]], min_shared: int = MIN_SHARED) \
        -> dict[int, tuple[_Node | None, int]]:
    """request index -> (deepest shared prefix node or None, where its own tokens start).

    Every prompt keeps at least its last token to itself (its logits come from its own decode)."""
    toks = dict(prompts)
    placed: dict[int, tuple[_Node | None, int]] = {}

    def build(idxs: list[int], depth: int, parent: _Node | None) -> None:
        base = parent.end if parent else 0
        groups: dict[int, list[int]] = {}
        for i in idxs:
            if len(toks[i]) - 1 <= depth:
                placed[i] = (parent, base)
            else:
                groups.setdefault(toks[i][depth], []).append(i)
        for group in groups.values():
            if len(group) == 1:
                placed[group[0]] = (parent, base)
                continue
            first, limit = toks[group[0]], min(len(toks[i]) for i in group) - 1
            lcp = depth + 1
            while lcp < limit and all(toks[i][lcp] == first[lcp] for i in group):
                lcp += 1
            node = parent
            if lcp - base >= min_shared:
                node = _Node(parent, base, first[base:lcp])
                if parent:
                    parent.children += 1
            build(group, lcp, node)

    build([i for i, _ in prompts], 0, None)
    for node, _ in placed.values():
        if node:
            node.children += 1
    return placed


class _Run:
    """One unit on one engine: prefix prefills, prompt tails, then one decode call per generation step."""

    def __init__(self, engine: BatchedEngine, requests: list[Request], ids: list[tuple[int, list[int]]],
                 out: list):
        self.e, self.out = engine, out
        placed = prefix_tree(ids)
        self.queue: deque[_Seq] = deque()
        for i, toks in ids:
            node, start = placed[i]
            self.queue.append(_Seq(i, requests[i], node, toks[start:], start, len(toks), prompt=toks))
        self.active: list[_Seq] = []
        self.prefilling: list[_Node] = []
        self.free = list(range(engine.n_seq - 1, -1, -1))   # sequence ids = KV streams
        self.tokens: dict[int, list[int]] = {}

    # -- sequences ------------------------------------------------------------------------------------------
    def _copy_from(self, parent: _Node | None, seq: int) -> None:
        """Give `seq` the parent's KV (a stream copy, done by llama.cpp before the next decode); the parent's
        stream is released once every prefix and prompt below it has its copy."""
        if parent is None:
            return
        self.e.L.llama_memory_seq_cp(self.e.mem, parent.seq, seq, -1, -1)
        self.e.stats["copies"] += 1
        parent.children -= 1
        if parent.children == 0:
            self._drop_seq(parent.seq)
            parent.seq, parent.state = -1, "done"

    def _drop_seq(self, seq: int) -> None:
        self.e.L.llama_memory_seq_rm(self.e.mem, seq, -1, -1)
        self.free.append(seq)

    def _prepare(self, s: _Seq, ahead: bool = False) -> bool:
        """Start the prefixes s needs (root first); True when they are all decoded."""
        chain, node = [], s.parent
        while node is not None and node.state != "ready":
            chain.append(node)
            node = node.parent
        if not chain:
            return True
        node = chain[-1]           # the first one not ready: its parent is ready (or it has none)
        reserve = (self.e.n_parallel - len(self.active)) if ahead else 0   # keep streams for free slots
        if node.state == "new" and len(self.free) > reserve:
            node.seq, node.state = self.free.pop(), "prefill"
            self._copy_from(node.parent, node.seq)
            self.prefilling.append(node)
        return False

    def _admit(self) -> None:
        e = self.e
        while self.queue and len(self.active) < e.n_parallel and self.free:
            s = self.queue[0]
            if not self._prepare(s):
                break
            self.queue.popleft()
            s.seq = self.free.pop()
            self._copy_from(s.parent, s.seq)
            s.sampler = e.L.llama_sampler_clone(e.grammars[s.req.task])
            self.active.append(s)
        for s in list(self.queue)[:e.n_parallel]:   # prefill the next prompts' prefixes meanwhile
            self._prepare(s, ahead=True)

    def _finish(self, s: _Seq, finish: str, error: str = "") -> None:
        text = bytes(s.text).decode("utf-8", errors="ignore")
        steps = tuple(s.steps) if s.req.confidence and finish != "error" else None
        self.out[s.index] = Completion("" if finish == "error" else text, finish, error, s.n_prompt, len(s.out),
                                       steps)
        self.tokens[s.index] = s.out
        self.e.L.llama_sampler_free(s.sampler)
        self.active.remove(s)
        self._drop_seq(s.seq)

    # -- decoding ---------------------------------------------------------------------------------------------
    def run(self) -> None:
        t0 = time.perf_counter()
        try:
            while self.queue or self.active:
                self._admit()
                if not (self._prompts() | self._generate()):
                    raise RuntimeError("batched engine stalled: nothing to decode")
        finally:
            for s in self.active:
                self.e.L.llama_sampler_free(s.sampler)
            self.e.L.llama_memory_clear(self.e.mem, False)
            self.e.stats["run_s"] += time.perf_counter() - t0

    def _decode(self, items: list[tuple[int, int, int, bool]]) -> None:
        """items: (token, position, sequence, wants logits), at most n_batch of them."""
        e = self.e
        n = len(items)
        for j, (tok, pos, seq, want) in enumerate(items):
            e._b_token[j], e._b_pos[j], e._b_logits[j] = tok, pos, want
            e._b_seq[j][0] = seq
        e.batch.n_tokens = n
        rc = e.L.llama_decode(e.ctx, e.batch)
        progress_step()
        if rc != 0:
            raise RuntimeError(f"llama_decode failed with code {rc} ({n} tokens, {len(self.active)} sequences)")

    def _chunk(self, owner) -> list[int]:
        """The next prompt chunk of a prefix or prompt tail: at most n_batch tokens, never a lone last token
        when it can be avoided (one token takes the single-token code path)."""
        left = len(owner.tokens) - owner.filled
        size = self.e.n_batch if left != self.e.n_batch + 1 else self.e.n_batch - 1
        return owner.tokens[owner.filled:owner.filled + min(size, left)]

    def _prompts(self) -> bool:
        """One decode call per prefix or prompt tail with tokens left (each in its own stream and call, as the
        simple engine evaluates a prompt); a finished prompt tail samples its first token."""
        st = self.e.stats
        work = [n for n in self.prefilling] + [s for s in self.active if s.filled < len(s.tokens)]
        for owner in work:
            toks = self._chunk(owner)
            pos = owner.start + owner.filled
            owner.filled += len(toks)
            last = owner.filled == len(owner.tokens)
            want = last and isinstance(owner, _Seq)
            t0 = time.perf_counter()
            self._decode([(t, pos + j, owner.seq, want and j == len(toks) - 1) for j, t in enumerate(toks)])
            st["prompt_s"] += time.perf_counter() - t0
            st["prompt_calls"] += 1
            st["prompt_tokens"] += len(toks)
            if last and isinstance(owner, _Node):
                owner.state = "ready"
                self.prefilling.remove(owner)
            elif want:
                t1 = time.perf_counter()
                self._sample(len(toks) - 1, owner)
                st["sample_s"] += time.perf_counter() - t1
        return bool(work)

    def _generate(self) -> bool:
        """One step: every generating sequence feeds its last token (one token per stream), and with
        RADBATCH_BATCHED draft=k up to k tokens its prompt suggests after it, checked in the same call."""
        st = self.e.stats
        gen = [s for s in self.active if s.filled == len(s.tokens) and s.out]
        if not gen:
            return False
        k = min(self.e.settings.draft, self.e.batch_cap // len(gen) - 1)   # every token fits one batch
        drafts = [self._draft(s, k) for s in gen] if k > 0 else [[] for _ in gen]
        items, rows = [], []
        for s, d in zip(gen, drafts):
            rows.append(len(items))
            items += [(t, s.pos - 1 + j, s.seq, True) for j, t in enumerate([s.out[-1], *d])]
        t0 = time.perf_counter()
        self._decode(items)
        t1 = time.perf_counter()
        for s, d, row in zip(gen, drafts, rows):
            self._verify(s, d, row)
        st["steps"] += 1
        st["draft_calls"] += any(drafts)
        st["decode_s"] += t1 - t0
        st["sample_s"] += time.perf_counter() - t1
        return True

    def _verify(self, s: _Seq, draft: list[int], row: int) -> None:
        """Greedy verification: the model's (grammar-masked) token after the last one, then after each draft token
        while the draft matched, each chosen exactly as without drafts (_sample, which checks the grammar before
        accepting). A draft token is kept only where it equals the model's own choice; the KV cells of the
        rejected rest are removed."""
        st = self.e.stats
        first = s.pos          # where the first draft token sits
        for j in range(len(draft) + 1):
            self._sample(row + j, s)
            st["gen_tokens"] += 1
            if s not in self.active:        # finished (stop, length, grammar dead end): its stream is gone
                return
            if j == len(draft) or s.out[-1] != draft[j]:
                break
            st["accepted"] += 1
        st["drafted"] += len(draft)
        if draft:
            self.e.L.llama_memory_seq_rm(self.e.mem, s.seq, first + j, -1)

    def _draft(self, s: _Seq, k: int) -> list[int]:
        """Prompt lookup: the k tokens that follow the latest place in the prompt (or the text generated so far)
        where the text's last DRAFT_NGRAMS tokens occur; none near max_tokens or without a match."""
        k = min(k, s.req.max_tokens - len(s.out) - 1)
        if k <= 0:
            return []
        history = s.prompt + s.out
        for n in DRAFT_NGRAMS:
            if len(s.out) < n:
                continue
            tail = history[-n:]
            for i in range(len(history) - n - 1, -1, -1):
                if history[i:i + n] == tail:
                    return history[i + n:i + n + k]
        return []

    def _constrained_argmax(self, s: _Seq, logits) -> int | None:
        """argmax over the tokens the grammar allows (lowest id among equal logits, as numpy's argmax), or None.

        The best TOP_K[0] tokens are tried first, then TOP_K[1]; an answer is exact when the best allowed token
        among them beats every token outside them. Otherwise the whole vocabulary is masked."""
        e, L, np = self.e, self.e.L, self.e.np
        t0 = time.perf_counter()
        for k in TOP_K:
            if k >= e.n_vocab:
                break
            part = np.argpartition(-logits, k)
            top, outside = part[:k], logits[part[k]]
            view = e._top_view[:k]
            view["id"], view["logit"] = top, logits[top]
            e._top_arr.size, e._top_arr.selected, e._top_arr.sorted = k, -1, False
            L.llama_sampler_apply(s.sampler, ctypes.byref(e._top_arr))
            masked = view["logit"]
            best = masked.max()
            e.stats["top_masks"] += 1
            if best != -np.inf and best > outside:
                e.stats["full_mask_s"] += time.perf_counter() - t0
                return int(view["id"][masked == best].min())
        view = e._full_view
        view["id"] = e._ids
        view["logit"] = logits
        e._full_arr.size, e._full_arr.selected, e._full_arr.sorted = e.n_vocab, -1, False
        L.llama_sampler_apply(s.sampler, ctypes.byref(e._full_arr))
        masked = view["logit"]
        token = int(masked.argmax())
        e.stats["full_masks"] += 1
        e.stats["full_mask_s"] += time.perf_counter() - t0
        return None if masked[token] == -np.inf else token

    def _confidence(self, s: _Seq, logits, token: int) -> float:
        """The chosen token's grammar-masked probability (radbatch/engines/confidence.py), before it is accepted."""
        from .confidence import (
            candidate_probability,
            eog_mask,
            token_pieces,
            token_universe,
        )
        e, task = self.e, s.req.task
        t0 = time.perf_counter()
        if e._eog is None:
            e._eog = eog_mask(e.L, e.np, e.vocab, e.n_vocab)
            e._pieces = token_pieces(e.L, e.vocab, e.n_vocab)
        if task not in e._universe:
            e._universe[task] = token_universe(e.np, e.gbnf[task], e._pieces, e._eog)
        p = candidate_probability(e.L, e.np, s.sampler, logits, token, e._eog, e._full, e._full_view,
                                  e._universe[task])
        e.stats["confidence_s"] += time.perf_counter() - t0
        return p

    def _sample(self, idx: int, s: _Seq) -> None:
        e, L, np = self.e, self.e.L, self.e.np
        logits = np.ctypeslib.as_array(L.llama_get_logits_ith(e.ctx, idx), shape=(e.n_vocab,))
        token = int(logits.argmax())
        e._one[0].id, e._one[0].logit, e._one[0].p = token, 0.0, 0.0
        e._one_arr.size, e._one_arr.selected, e._one_arr.sorted = 1, -1, False
        L.llama_sampler_apply(s.sampler, ctypes.byref(e._one_arr))
        if e._one[0].logit == float("-inf"):       # the grammar rejects it
            token = self._constrained_argmax(s, logits)
            if token is None:
                self._finish(s, "error", f"grammar dead end: no token fits the {s.req.task} grammar after "
                                         f"{len(s.out)} generated tokens")
                return
        p = self._confidence(s, logits, token) if s.req.confidence else None
        if L.llama_vocab_is_eog(e.vocab, token):
            if p is not None:
                s.steps.append((len(s.text), len(s.text), p))
            self._finish(s, "stop")
            return
        L.llama_sampler_accept(s.sampler, token)
        s.out.append(token)
        start = len(s.text)
        s.text += e._piece_of(token)
        if p is not None:
            s.steps.append((start, len(s.text), p))
        # create_completion holds back the length check while the text ends inside a UTF-8 character
        for k, char in enumerate(s.text[-3:]):
            k = 3 - k
            for num, pattern in ((2, 192), (3, 224), (4, 240)):
                if num > k and pattern & char == pattern:
                    s.multibyte_fix = num - k
        if s.multibyte_fix > 0:
            s.multibyte_fix -= 1
            return
        if len(s.out) >= s.req.max_tokens:
            self._finish(s, "length")
