"""The batched engine against the simple (reference) engine, on the real embedded model.

Greedy decoding: the batched engine must say exactly what the simple engine says for every head of the
sample reports, and end the same way (length -> truncated, too long -> error) when a request cannot finish.
A grammar dead end aborts llama.cpp in the simple engine (the worker dies and the unit fails); the batched
engine ends only that sequence, as a row error.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import REPORTS, run_cli, write_reports
from radbatch.archive.reading import ColumnOptions, iter_units
from radbatch.engines.simple import LlamaEngine
from radbatch.engines.spec import Request, WorkerSpec
from radbatch.engines.build import run_unit
from radbatch.engines.batched import BatchedEngine, BatchSettings, prefix_tree
from radbatch.annotation.plan import AnnotateOptions, build_plan
from radbatch.heads.prompts import render
from radbatch.annotation.rows import _head_result, prepare

DEAD_END = 'root ::= "a" "\\x00"'   # no token's text is a NUL byte: nothing fits after "a"


@pytest.fixture(scope="module")
def unit(tmp_path_factory):
    """The requests `radbatch annotate` sends for all heads of the first 4 conftest reports (one unit)."""
    tmp = tmp_path_factory.mktemp("batched")
    src = write_reports(tmp / "in.parquet", n=4)
    cols = ColumnOptions(question="question")
    plan = build_plan(AnnotateOptions((str(src),), str(tmp / "out.parquet"), columns=cols, model="smollm2"))
    (start, table), = iter_units(plan.files[0], "utf-8", cols.text_columns(), 4)
    work = prepare(0, str(src), start, table, cols, plan.heads, plan.head_models, plan.recipes.profiles, {})
    (name, spec), = plan.models.items()
    grammars = {h.recipe.id: h.grammar() for h in plan.heads}
    return plan, work, name, spec, grammars


@pytest.fixture(scope="module")
def engines(unit):
    plan, work, name, spec, grammars = unit
    grammars = {**grammars, "dead": DEAD_END}
    simple = LlamaEngine(spec, 2, 0, grammars)
    batched = BatchedEngine(spec, 2, 0, grammars, BatchSettings(n_parallel=16))
    yield simple, batched
    batched.close()


@pytest.fixture(scope="module")
def both_outputs(unit, engines):
    plan, work, name, spec, grammars = unit
    simple, batched = engines
    return work.requests, run_unit({name: simple}, work.requests), run_unit({name: batched}, work.requests)


def test_batched_equals_simple_for_every_head(both_outputs, unit):
    requests, simple, batched = both_outputs
    plan = unit[0]
    assert {r.task for r in requests} == {h.recipe.id for h in plan.heads}  # every head is exercised
    differ = [(r.row, r.slot, s, b) for r, s, b in zip(requests, simple, batched) if s != b]
    assert differ == []
    assert all(c.finish in ("stop", "length") for c in batched)


def _shortened(req: Request, max_tokens: int) -> Request:
    return dataclasses.replace(req, max_tokens=max_tokens)


def test_max_tokens_truncates_like_the_simple_engine(unit, engines, both_outputs):
    plan, work, name, *_ = unit
    simple, batched = engines
    long_ones = [r for r, c in zip(*both_outputs[:2]) if c.generated_tokens > 3][:4]
    assert long_ones, "no head produced more than 3 tokens"
    reqs = [_shortened(r, 3) for r in long_ones]
    s_out, b_out = run_unit({name: simple}, reqs), run_unit({name: batched}, reqs)
    assert b_out == s_out
    assert {c.finish for c in b_out} == {"length"} and {c.generated_tokens for c in b_out} == {3}
    head = next(h for h in plan.heads if h.key == reqs[0].slot)
    assert _head_result(head, b_out[0], "")[0] == "truncated"


def test_report_longer_than_the_context_is_a_row_error(unit):
    plan, work, name, spec, grammars = unit
    small = dataclasses.replace(spec, context_size=256)
    profile = plan.recipes.profiles[spec.profile]
    long_prompt = render(profile.layout, profile.system, "chatml", "m_staging", "Give the M stage.",
                         [("report", " ".join(REPORTS) * 2)])
    short = next(r for r in work.requests if r.task == "m_staging")
    reqs = [Request(0, "m_staging", "m_staging", name, long_prompt, 6), short]
    simple = LlamaEngine(small, 2, 0, grammars)
    batched = BatchedEngine(small, 2, 0, grammars, BatchSettings(n_parallel=4))
    s_out, b_out = run_unit({name: simple}, reqs), run_unit({name: batched}, reqs)
    batched.close()
    assert b_out == s_out
    assert b_out[0].finish == "error" and "over the model context of 256" in b_out[0].error
    assert b_out[1].finish == "stop"
    head = next(h for h in plan.heads if h.key == "m_staging")
    status, _, error = _head_result(head, b_out[0], "")
    assert status == "error" and "report too long" in error


def _with_a_long_report(unit) -> list[Request]:
    """The unit's requests (all under 512 cells) and two m_staging requests on a report of ~900 tokens."""
    plan, work, name, spec, grammars = unit
    profile = plan.recipes.profiles[spec.profile]
    long_prompt = render(profile.layout, profile.system, "chatml", "m_staging", "Give the M stage.",
                         [("report", " ".join(REPORTS * 2))])
    return [*work.requests, Request(90, "m_staging", "m_staging", name, long_prompt, 6),
            Request(91, "m_staging", "m_staging", name, long_prompt, 6)]


def test_kv_streams_grow_to_the_longest_request_and_compute_what_full_streams_compute(unit):
    """Streams start at 512 cells and grow (a new context) to the longest request, in steps of 256; the outputs
    are those of an engine whose streams hold the model's whole context (issue 16 item 4: KV sized to the work)."""
    plan, work, name, spec, grammars = unit
    requests = _with_a_long_report(unit)
    grown = BatchedEngine(spec, 2, 0, grammars, BatchSettings(n_parallel=16))
    assert grown.stream == 512 and grown.stats["contexts"] == 1
    sizes = [len(grown.tokens(r.prompt)) + r.max_tokens for r in requests]
    assert max(sizes[:-2]) <= 512 < max(sizes) < spec.context_size - 256, sizes
    first = run_unit({name: grown}, requests[:-2])
    assert (grown.stream, grown.stats["contexts"]) == (512, 1)     # nothing needed more
    out = run_unit({name: grown}, requests)
    assert (grown.stream, grown.stats["contexts"]) == (-(-max(sizes) // 256) * 256, 2)
    assert run_unit({name: grown}, requests[:-2]) == first and grown.stream > 512   # streams never shrink
    wide = BatchedEngine(spec, 2, 0, grammars, BatchSettings(n_parallel=16))
    wide._make_context(spec.context_size)       # every stream at the model's context, as before streams grew
    assert wide.stream == spec.context_size
    assert run_unit({name: wide}, requests) == out and out[:-2] == first
    assert all(c.finish in ("stop", "length") for c in out)
    grown.close()
    wide.close()


def test_kv_cells_caps_the_streams_and_a_longer_request_is_a_row_error(unit, both_outputs):
    plan, work, name, spec, grammars = unit
    requests = _with_a_long_report(unit)
    capped = BatchedEngine(spec, 2, 0, grammars, BatchSettings(n_parallel=16, kv_cells=300))   # rounded to 512
    out = run_unit({name: capped}, requests)
    assert capped.stream == 512
    capped.close()
    assert out[:-2] == both_outputs[2]   # the unit's own requests fit: answered as without a cap
    for got in out[-2:]:
        assert got.finish == "error" and "over the KV stream cap of 512 cells" in got.error and "kv_cells" in got.error


def test_prompt_lookup_drafts_agree_with_plain_decoding_and_save_steps(unit, both_outputs):
    """RADBATCH_BATCHED draft=8 (issue 16 item 2, off by default). Checking several tokens of a sequence in one
    call moves its logits (by up to ~0.9 on this model: other kernels than one-token decoding, docs/performance.md
    "Drafts"), so outputs may part at near-ties: on this unit every closed-label answer is the same text and at
    most 2 generations part (measured: the impression and NER outputs, inside degenerate repetitions). Where heads
    copy the report, drafts are accepted, so the engine needs fewer decode calls than it generates tokens."""
    plan, work, name, spec, grammars = unit
    requests, _, plain = both_outputs
    plain_engine = BatchedEngine(spec, 2, 0, grammars, BatchSettings(n_parallel=16))
    assert run_unit({name: plain_engine}, requests) == plain
    plain_steps = plain_engine.stats["steps"]
    plain_engine.close()
    drafting = BatchedEngine(spec, 2, 0, grammars, BatchSettings(n_parallel=16, draft=8))
    out = run_unit({name: drafting}, requests)
    st = drafting.stats
    drafting.close()
    closed = {"rads_assignment", "n_staging", "m_staging", "radiology_nli", "abnormality_detection"}
    assert [c.text for r, c in zip(requests, out) if r.task in closed] == \
        [c.text for r, c in zip(requests, plain) if r.task in closed]
    assert sum(a.text != b.text for a, b in zip(out, plain)) <= 2
    assert all(c.finish in ("stop", "length") for c in out)
    assert st["accepted"] > 0 and st["drafted"] >= st["accepted"]
    assert st["steps"] < 0.8 * plain_steps   # accepted drafts saved decode calls (measured: 102 against 163)


def test_a_draft_the_grammar_rejects_never_reaches_the_output(unit, monkeypatch):
    """Drafts of a token no grammar allows (a NUL byte) are all rejected: none is accepted, none reaches an
    output, and every request still ends as a plain run's would (stop or length), its KV freed of the rejected
    cells. (Outputs are not compared with a run without drafts: the extra rows in each call move logits.)"""
    from radbatch.engines import batched as module
    plan, work, name, spec, grammars = unit
    drafting = BatchedEngine(spec, 2, 0, grammars, BatchSettings(n_parallel=16, draft=4))
    junk = next(t for t in range(drafting.n_vocab) if drafting._piece_of(t) == b"\x00")
    monkeypatch.setattr(module._Run, "_draft", lambda self, s, k: [junk] * min(k, s.req.max_tokens - len(s.out) - 1))
    out = run_unit({name: drafting}, work.requests)
    st = drafting.stats
    drafting.close()
    assert st["drafted"] > 0 and st["accepted"] == 0
    assert all(c.finish in ("stop", "length") and "\x00" not in c.text for c in out)


def test_grammar_dead_end_ends_only_that_sequence(unit, engines, both_outputs):
    plan, work, name, *_ = unit
    batched = engines[1]
    requests, simple_out, _ = both_outputs
    dead = dataclasses.replace(requests[0], task="dead", slot="dead")
    out = batched.complete_many([requests[0], dead, requests[1]])
    assert out[0] == simple_out[0] and out[2] == simple_out[1]
    assert out[1].finish == "error" and out[1].error.startswith("grammar dead end: no token fits the dead grammar")


@pytest.mark.parametrize("engine", ["simple", "batched"])
def test_grammar_dead_end_in_a_worker(unit, engine):
    """Through the real worker pool: the simple engine's worker dies (llama.cpp aborts) and the unit fails;
    the batched worker survives and returns the dead end as that head's error."""
    from radbatch.executors.pool import Pool
    plan, work, name, spec, grammars = unit
    dead = dataclasses.replace(work.requests[0], task="dead", slot="dead")
    pool = Pool(WorkerSpec({name: spec}, {"dead": DEAD_END}, 1, engine=engine), 1, {name}, max_attempts=1)
    pool.start()
    try:
        (outcome,) = list(pool.run([("u", "unit", [dead])]))
    finally:
        pool.close()
    if engine == "simple":
        assert outcome.completions is None and "worker died" in outcome.failure
    else:
        (comp,) = outcome.completions
        assert comp.finish == "error" and "grammar dead end" in comp.error


def _random_lora(path: Path) -> Path:
    """A LoRA adapter for the embedded model (llama, width 576): rank 4 on attn_q and ffn_up of blocks 0-3,
    seeded random weights large enough to change its answers."""
    import gguf   # a core dependency: never skipped on
    import numpy as np
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_type("adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", 8.0)
    for blk in range(4):
        for name, (n_out, n_in) in {"attn_q": (576, 576), "ffn_up": (1536, 576)}.items():
            w.add_tensor(f"blk.{blk}.{name}.weight.lora_a", rng.normal(0, 0.05, (4, n_in)).astype(np.float32))
            w.add_tensor(f"blk.{blk}.{name}.weight.lora_b", rng.normal(0, 0.05, (n_out, 4)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_lora_adapter_applies_like_the_simple_engine(unit, engines, both_outputs, tmp_path):
    plan, work, name, spec, grammars = unit
    with_lora = dataclasses.replace(spec, adapter=str(_random_lora(tmp_path / "lora.gguf")))
    reqs = [r for r in work.requests if r.task in ("rads_assignment", "m_staging", "radiology_qa")]
    simple = LlamaEngine(with_lora, 2, 0, grammars)
    batched = BatchedEngine(with_lora, 2, 0, grammars, BatchSettings(n_parallel=8))
    s_out, b_out = run_unit({name: simple}, reqs), run_unit({name: batched}, reqs)
    batched.close()
    assert b_out == s_out
    base = {(r.row, r.slot): c for r, c in zip(both_outputs[0], both_outputs[2])}
    assert [base[(r.row, r.slot)] for r in reqs] != b_out      # the adapter is applied at all


def test_refused_adapter_is_a_load_error(unit, tmp_path):
    plan, work, name, spec, grammars = unit
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ValueError, match="llama.cpp refused the LoRA adapter"):
        BatchedEngine(dataclasses.replace(spec, adapter=str(bad)), 1, 0, {}, BatchSettings())


def test_prefix_tree_shares_report_prefixes():
    sys_ = list(range(100, 130))               # a 30-token system prompt shared by all
    rep_a, rep_b = list(range(200, 260)), list(range(300, 340))
    tail = list(range(1, 21))
    prompts = [(0, sys_ + rep_a + tail), (1, sys_ + rep_a + [4, 5]), (2, sys_ + rep_b + [1, 2]),
               (3, sys_ + rep_b + [6]), (4, sys_ + [7, 8]), (5, sys_ + rep_a + tail), (6, sys_ + rep_b + [1, 3])]
    placed = prefix_tree(prompts)
    node_a = placed[1][0]
    assert placed[1] == (node_a, 90) and node_a.tokens == rep_a and node_a.parent.tokens == sys_
    assert placed[2][0].tokens == rep_b and placed[2][0].parent is node_a.parent
    assert placed[6] == placed[2]                      # [1] after rep_b is shared too, but under MIN_SHARED
    assert placed[4] == (node_a.parent, 30)            # shares only the system prompt
    node0, start0 = placed[0]                          # 0 and 5 are identical: all but the last token shared
    assert placed[5] == placed[0] and start0 == len(prompts[0][1]) - 1 and node0.parent is node_a
    assert (node_a.children, node_a.parent.children) == (2, 3)   # {node0, 1}; {node_a, node_b, 4}
    for i, toks in prompts:                            # every prompt keeps at least its last token
        node, start = placed[i]
        assert start < len(toks) and (node is None or node.end == start)


def test_annotate_cli_batched_writes_what_simple_writes(tmp_path: Path):
    src = write_reports(tmp_path / "in.parquet")
    tables = {}
    for engine in ("simple", "batched"):
        out = tmp_path / f"{engine}.parquet"
        res = run_cli("annotate", src, "-o", out, "--tasks", "rads_assignment,m_staging,radiology_nli",
                      "--engine", engine, "--workers", "1", "--threads", "2", "-q")
        assert res.returncode == 0, res.stderr
        tables[engine] = pq.read_table(out).to_pylist()

    def labels(rows):
        return [{k: v for k, v in r.items() if not k.endswith("confidence")} for r in rows]

    assert labels(tables["batched"]) == labels(tables["simple"])
    # Confidences (float32) come from each engine's own logits: equal up to the last bits on the base model
    # (tests/test_confidence.py, 1e-3); the routed members here run LoRA adapters, whose products depend on the
    # batch shape (docs/performance.md, "Agreement"), so their logits differ a little more.
    diffs = {(i, k): abs(b[k] - s[k]) for i, (b, s) in enumerate(zip(tables["batched"], tables["simple"]))
             for k in b if k.endswith("confidence") and b[k] is not None and s[k] is not None}
    assert diffs and max(diffs.values()) < 0.02, sorted(diffs.items(), key=lambda kv: -kv[1])[:5]
    assert [[r[k] is None for k in r if k.endswith("confidence")] for r in tables["batched"]] == \
        [[r[k] is None for k in r if k.endswith("confidence")] for r in tables["simple"]]
    meta = pq.read_metadata(tmp_path / "batched.parquet").metadata or {}
    assert any(b'"engine": "batched"' in v for v in meta.values())
