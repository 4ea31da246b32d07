"""The step probabilities of per-label confidence, from the logits the engine already has (the definition, and how
steps become columns: radbatch/heads/confidence.py).

The simple engine masks the whole vocabulary (the reference), as its sampler chain does. The batched engine must
not (a full mask costs 7-15 ms on 49,152 tokens, as much as generating the token): it applies the grammar to the
grammar's token universe only (`token_universe`: the few hundred tokens whose text fits a concatenation of the
grammar's literals, computed once per task), which gives the same allowed set, so the same number. For a grammar
with character classes it falls back to the tokens near the chosen token's logit, leaving out at most TAIL of
the chosen token's weight. tests/test_confidence.py checks that both engines agree.
"""

from __future__ import annotations

import ctypes
import re

from radbatch.heads.confidence import Step

MARGINS = (8.0, 12.0, 16.0)   # batched engine: candidate margins below the chosen token's logit, tried in turn
TAIL = 1e-5                   # ... until what they leave out weighs at most this (relative to the chosen token)
CUTOFF = 25.0                 # ... else this margin: n_vocab * exp(-25) = 7e-7 for 49,152 tokens


# -- the step probability, shared by both engines --------------------------------------------------------------
def masked_probability(np, logits, chosen: int, allowed, eog) -> float:
    """softmax over the allowed token ids (numpy array, includes `chosen`) at `chosen`, in float64.

    The end-of-generation tokens (`eog`: a bool per vocabulary id) count as one choice, "end here": which of
    them ends the answer decides nothing."""
    sel = logits[allowed].astype(np.float64)
    w = np.exp(sel - sel.max())
    mine = eog[allowed] if eog[chosen] else allowed == chosen
    return float(w[mine].sum() / w.sum())


def candidate_probability(L, np, sampler, logits, chosen: int, eog, buf, view, universe=None) -> float:
    """The batched engine's step probability: the grammar applied only to candidates, not the whole vocabulary.

    With a `universe` (`token_universe`: every token the grammar can ever allow) the candidates are that set, and
    the result is exact. Without one, the tokens within `margin` logits of the chosen one, `margin` the first of
    MARGINS whose left-out tokens (allowed or not) weigh at most TAIL relative to the chosen token, else CUTOFF
    (there they weigh at most n_vocab * exp(-CUTOFF)). `buf`/`view`: a llama_token_data array of n_vocab
    entries and its numpy view."""
    if universe is not None and chosen in universe:
        return _apply(L, np, sampler, logits, chosen, eog, buf, view, universe)
    d = logits - logits[chosen]
    w = np.exp(np.minimum(d, 0.0), dtype=np.float64)
    total = w.sum()
    for margin in MARGINS:
        cand = np.flatnonzero(d >= -margin)
        if total - w[cand].sum() <= TAIL:
            break
    else:
        cand = np.flatnonzero(d >= -CUTOFF)
    if len(cand) == 1:
        return 1.0
    return _apply(L, np, sampler, logits, chosen, eog, buf, view, cand)


def _apply(L, np, sampler, logits, chosen, eog, buf, view, cand) -> float:
    n = len(cand)
    part = view[:n]
    part["id"], part["logit"] = cand, logits[cand]
    arr = L.llama_token_data_array(buf, n, -1, False)
    L.llama_sampler_apply(sampler, ctypes.byref(arr))
    return masked_probability(np, logits, chosen, cand[np.isfinite(part["logit"])], eog)


def full_choice(L, np, sampler, logits, eog, buf, view) -> tuple[int | None, float]:
    """The simple engine's step: the grammar applied to the whole vocabulary (the reference), the greedy choice
    among the allowed tokens (lowest id among equal logits, as llama.cpp's greedy sampler) and its probability;
    (None, 0.0) when nothing is allowed."""
    n = len(logits)
    view["id"] = np.arange(n, dtype=np.int32)
    view["logit"] = logits
    arr = L.llama_token_data_array(buf, n, -1, False)
    L.llama_sampler_apply(sampler, ctypes.byref(arr))
    allowed = np.flatnonzero(np.isfinite(view["logit"]))
    if not len(allowed):
        return None, 0.0
    chosen = int(allowed[np.argmax(logits[allowed])])
    return chosen, masked_probability(np, logits, chosen, allowed, eog)


def eog_mask(L, np, vocab, n_vocab: int):
    """A bool per vocabulary id: is it an end-of-generation token."""
    return np.array([bool(L.llama_vocab_is_eog(vocab, i)) for i in range(n_vocab)])


class StepRecorder:
    """A logits processor for create_completion (the simple engine): replays the request's grammar beside
    llama.cpp's sampler chain, takes the same greedy choice among the allowed tokens and records its step
    (start byte, end byte, probability). The engine compares the replayed text with the completion's."""

    def __init__(self, L, np, vocab, sampler, eog, buf, view):
        self.L, self.np, self.vocab, self.sampler, self.eog, self.buf, self.view = L, np, vocab, sampler, eog, buf, view
        self.steps: list[Step] = []
        self.text = bytearray()
        self.ended = False      # an end-of-generation token was chosen
        self.failed = False     # the grammar allowed nothing (llama.cpp aborts then anyway)
        self._piece = ctypes.create_string_buffer(256)

    def __call__(self, input_ids, scores):
        if self.failed or self.ended:
            return scores
        logits = self.np.ascontiguousarray(scores, dtype=self.np.float32)
        chosen, p = full_choice(self.L, self.np, self.sampler, logits, self.eog, self.buf, self.view)
        if chosen is None:
            self.failed = True
            return scores
        start = len(self.text)
        if self.eog[chosen]:
            self.ended = True
        else:
            self.L.llama_sampler_accept(self.sampler, chosen)
            n = self.L.llama_token_to_piece(self.vocab, chosen, self._piece, 256, 0, False)
            self.text += self._piece.raw[:max(n, 0)]
        self.steps.append((start, len(self.text), p))
        return scores

    def result(self, text: str, finish: str) -> tuple[Step, ...] | None:
        """The steps, or None when the replay does not match what llama.cpp generated."""
        same = bytes(self.text).decode("utf-8", errors="ignore") == text and (finish == "stop") == self.ended
        return tuple(self.steps) if same and not self.failed else None


def token_pieces(L, vocab, n_vocab: int) -> list[bytes]:
    """Every token's text as the grammar sees it (special tokens render empty)."""
    buf = ctypes.create_string_buffer(256)
    out = []
    for i in range(n_vocab):
        n = L.llama_token_to_piece(vocab, i, buf, 256, 0, False)
        out.append(buf.raw[:max(n, 0)])
    return out


_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", '"': b'"', "\\": b"\\"}


def token_universe(np, gbnf: str, pieces: list[bytes], eog):
    """The tokens a grammar made only of string literals can ever allow (ids, numpy): a token's text must be a
    piece of a concatenation of the literals (within one, or a literal's end, whole literals, another's start),
    plus the end tokens. A superset, exact enough to stand in for the whole vocabulary: every other token is
    masked anyway. None for grammars with character classes (free text), where it would be the vocabulary."""
    lits, rest = [], _LITERAL.sub(" ", gbnf)
    if "[" in rest or "." in rest:
        return None
    for m in _LITERAL.finditer(gbnf):
        raw, out, i = m.group(1), bytearray(), 0
        while i < len(raw):
            if raw[i] == "\\" and i + 1 < len(raw) and raw[i + 1] in _ESCAPES:
                out += _ESCAPES[raw[i + 1]]
                i += 2
            elif raw[i] == "\\":
                return None   # an escape this reader does not know: no universe, the engine falls back
            else:
                out += raw[i].encode()
                i += 1
        if out:
            lits.append(bytes(out))
    joined = b"\0".join(lits)
    suffixes = {lit[i:] for lit in lits for i in range(len(lit))}
    prefixes = {lit[:i] for lit in lits for i in range(1, len(lit) + 1)}

    def cont(r: bytes) -> bool:   # r = whole literals, then a literal's start
        return r in prefixes or any(r.startswith(lit) and cont(r[len(lit):]) for lit in lits if len(r) > len(lit))

    def feasible(p: bytes) -> bool:
        if not p or b"\0" in p:
            return False
        return p in joined or any(p[:i] in suffixes and cont(p[i:]) for i in range(1, len(p)))

    ids = [i for i, p in enumerate(pieces) if eog[i] or feasible(p)]
    return np.array(ids, dtype=np.int64)
