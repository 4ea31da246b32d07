"""`LlamaEngine`, the simple reference engine: one sequence at a time through llama-cpp-python, greedy,
grammar-constrained. llama.cpp reuses the KV cache for the longest common token prefix with the previous
prompt, so the heads of one report (report-first layout) prefill the report only once.
"""

from __future__ import annotations

from radbatch.heads.models import ModelSpec
from radbatch.heads.prompts import Prompt

from .spec import Completion, Request, progress_step


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
        """A fresh grammar replay for one request (radbatch/engines/confidence.py, the whole vocabulary masked)."""
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


