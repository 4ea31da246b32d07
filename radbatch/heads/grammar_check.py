"""Does a head's GBNF grammar accept a given answer? Checked with llama.cpp's own grammar sampler.

Used by tests and by finetune data preparation (every training target must be grammatical). Each answer token
is checked against the sampler's mask before it is accepted, so an invalid answer is reported, never fed
to llama.cpp (which aborts on tokens its grammar cannot accept).
"""

from __future__ import annotations

import ctypes

import numpy as np


def grammar_accepts(llm, grammar: str, answer: str) -> bool:
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
    if not sampler:
        raise ValueError("grammar does not compile")
    n_vocab = llm.n_vocab()
    data = (llama_cpp.llama_token_data * n_vocab)()
    view = np.frombuffer(data, dtype=np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)]))
    tokens = llm.tokenize(answer.encode(), add_bos=False, special=False) + [llm.token_eos()]
    try:
        for tok in tokens:
            view["id"] = np.arange(n_vocab, dtype=np.int32)
            view["logit"] = 0.0
            view["p"] = 0.0
            arr = llama_cpp.llama_token_data_array(data, n_vocab, -1, False)
            llama_cpp.llama_sampler_apply(sampler, ctypes.byref(arr))
            if not np.isfinite(view["logit"][tok]):
                return False
            if tok == llm.token_eos():
                return True
            llama_cpp.llama_sampler_accept(sampler, tok)
    finally:
        llama_cpp.llama_sampler_free(sampler)
    return False
