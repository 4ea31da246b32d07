"""Per-label confidence (radbatch/engines/confidence.py) on the real embedded model, both engines, and in the output.

The model runs a few reports through the five closed-label heads: plainly stated answers, a contradictory
one, a chest radiograph. Confidences are probabilities, stable on a rerun, the same from both engines, high
where the report states the answer plainly and lower where it contradicts itself; annotate writes them as
typed float32 columns.
"""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run_cli, write_reports
from radbatch.engines import confidence as engine_confidence
from radbatch.heads import confidence
from radbatch.archive.reading import ColumnOptions, iter_units
from radbatch.engines.spec import Completion
from radbatch.engines.simple import LlamaEngine
from radbatch.engines.build import run_unit
from radbatch.engines.batched import BatchedEngine
from radbatch.annotation.plan import AnnotateOptions, build_plan
from radbatch.heads.recipes import load_recipes
from radbatch.annotation.rows import assemble, prepare
from radbatch.heads.tasks import CONFIDENCE_TYPE, HeadInstance

CLOSED = ("rads_assignment", "n_staging", "m_staging", "radiology_nli", "abnormality_detection")
GENERATIVE = ("impression_generation", "radiology_qa", "radiology_ner", "temporal_comparison")
M1_PLAIN = ("CT CHEST, ABDOMEN AND PELVIS\nFINDINGS: Multiple hypodense liver lesions.\n"
            "IMPRESSION: M1: multiple liver metastases.")
STAGING = ("EXAM: CT CHEST ABDOMEN PELVIS WITH CONTRAST\n\nIndication:\nStaging of newly diagnosed right lung "
           "cancer.\n\nTechnique:\nCT of the chest, abdomen and pelvis with IV contrast.\n\nComparison:\nNo prior "
           "studies.\n\nFindings:\nRight lower lobe mass, 4.1 cm.\n")
M1_STAGED = (STAGING + "Multiple hypodense liver lesions, the largest 3.2 cm, compatible with metastatic disease.\n\n"
             "Impression:\n1. 4.1 cm right lower lobe mass, consistent with the known primary malignancy.\n"
             "2. Metastatic disease in the liver.\n3. Imaging stage M1.")
CONTRADICTORY = [
    STAGING + "Multiple hypodense liver lesions, compatible with metastatic disease.\nNo evidence of distant "
              "metastatic disease.\n\nImpression:\n1. Metastatic disease in the liver.\n2. No evidence of distant "
              "metastatic disease.\n3. Imaging stage M0.",
    "CT CHEST, ABDOMEN AND PELVIS\nFINDINGS: Multiple liver metastases. No distant metastases.\n"
    "IMPRESSION: M0: multiple liver metastases. M1: no distant metastases.",
]
CHEST = ("XR CHEST PORTABLE\nFINDINGS: Endotracheal tube in good position. Bibasilar atelectasis. "
         "No pleural effusion.\nIMPRESSION: Support devices in place. Bibasilar atelectasis.")
TOLERANCE = 1e-3   # simple vs batched: logits differ in the last bits (docs/performance.md, "Confidence")


# -- the schema ---------------------------------------------------------------------------------------------------
def test_closed_label_heads_have_float_confidence_columns_and_generative_heads_none():
    tasks = load_recipes().tasks
    for task in CLOSED + GENERATIVE:
        fields = HeadInstance(tasks[task]).output_fields()
        conf = [f for f in fields if f.name.endswith("confidence")]
        assert all(f.type == CONFIDENCE_TYPE == pa.float32() for f in conf)
        assert [f.name for f in fields[-3:]] == [f"{task}__status", f"{task}__error", f"{task}__model"]
        if task == "abnormality_detection":
            labels = [name for name, _ in tasks[task].columns]
            assert [f.name for f in conf] == [f"{task}__{label}_confidence" for label in labels]
        elif task in CLOSED:
            assert [f.name for f in conf] == [f"{task}__confidence"]
        else:
            assert conf == []


def test_radbatch_tasks_lists_the_confidence_columns():
    res = run_cli("tasks")
    assert res.returncode == 0, res.stderr
    for task in CLOSED[:4]:
        assert f"  {task}__confidence: float\n" in res.stdout
    assert "  abnormality_detection__pneumothorax_confidence: float\n" in res.stdout
    assert "impression_generation__confidence" not in res.stdout


# -- which tokens decide which column (the mapping alone, on hand-made steps) --------------------------------------
def _steps(text: str, probs: dict[str, float], end: float) -> tuple:
    """One step per listed piece of `text` (in order), probability from `probs`, then the end token."""
    out, pos = [], 0
    for piece, p in probs.items():
        start = text.encode().index(piece.encode(), pos)
        assert start == pos, "pieces must cover the text"
        out.append((start, start + len(piece.encode()), p))
        pos = start + len(piece.encode())
    assert pos == len(text.encode())
    return tuple(out) + ((pos, pos, end),)


def test_labels_confidence_takes_the_tokens_that_decided_each_column():
    answer = load_recipes().tasks["abnormality_detection"].answer
    text = "Atelectasis: positive\nPleural Effusion: negative"
    steps = _steps(text, {"At": 0.9, "electasis": 1.0, ":": 1.0, " positive": 0.8,
                          "\nPleural": 0.5, " Effusion": 0.7, ": neg": 0.6, "ative": 1.0}, end=0.95)
    got = confidence.from_steps(answer, text, steps)
    assert got["atelectasis_confidence"] == pytest.approx(0.9 * 0.8)
    assert got["pleural_effusion_confidence"] == pytest.approx(0.5 * 0.7 * 0.6)
    # passed over between the two lines: decided by the second line's name part
    assert got["cardiomegaly_confidence"] == pytest.approx(0.5 * 0.7)
    assert got["no_finding_confidence"] == pytest.approx(0.5 * 0.7)
    # after the last line: decided by the end token
    assert got["pneumothorax_confidence"] == pytest.approx(0.95)
    assert set(got) == set(confidence.fields(answer))


def test_choice_confidence_is_the_whole_answer_and_none_answers_cover_every_label():
    tasks = load_recipes().tasks
    steps = _steps("Positive, N2", {"Positive": 0.9, ",": 1.0, " N": 1.0, "2": 0.5}, end=1.0)
    assert confidence.from_steps(tasks["n_staging"].answer, "Positive, N2", steps) == \
        {"confidence": pytest.approx(0.45)}
    labels = tasks["abnormality_detection"].answer
    got = confidence.from_steps(labels, "None", _steps("None", {"None": 0.7}, end=1.0))
    assert list(got.values()) == [pytest.approx(0.7)] * 14


def test_a_member_without_logits_gives_its_own_confidence_and_unknown_fields_fail():
    head = HeadInstance(load_recipes().tasks["m_staging"])
    given = confidence.constant(head.recipe.answer, 1.0)
    assert head.confidences("M1", None, given) == {"m_staging__confidence": 1.0}
    assert head.confidences("M1", None, None) == {}
    with pytest.raises(ValueError, match="unknown field"):
        head.confidences("M1", None, {"stage_confidence": 1.0})


ANSWERS = {"m_staging": ["M0", "M1"], "n_staging": ["Positive, N2", "Negative, N0"], "radiology_nli": ["neutral"],
           "rads_assignment": ["No applicable RADS", "LI-RADS LR-TR nonviable", "BI-RADS 4A"],
           "abnormality_detection": ["None", "No Finding: positive", "Atelectasis: negative\nLung Lesion: positive\n"
                                     "Pleural Other: uncertain\nSupport Devices: positive"]}


def test_the_batched_engines_token_universe_holds_every_token_the_grammar_allows():
    """Along each answer (token by token), llama.cpp's grammar on the whole vocabulary allows nothing outside
    the universe, so the batched engine's masked softmax over the universe is the simple engine's."""
    import ctypes

    import llama_cpp as L
    import numpy as np

    from radbatch.heads.models import embedded_path
    L.llama_backend_init()
    params = L.llama_model_default_params()
    params.vocab_only = True
    model = L.llama_model_load_from_file(str(embedded_path()).encode(), params)
    try:
        vocab = L.llama_model_get_vocab(model)
        n = L.llama_vocab_n_tokens(vocab)
        buf = (L.llama_token_data * n)()
        view = np.frombuffer(buf, dtype=np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)]))
        eog = engine_confidence.eog_mask(L, np, vocab, n)
        pieces = engine_confidence.token_pieces(L, vocab, n)
        tasks = load_recipes().tasks
        assert engine_confidence.token_universe(np, HeadInstance(tasks["radiology_qa"]).grammar(), pieces, eog) is None
        for task, texts in ANSWERS.items():
            grammar = HeadInstance(tasks[task]).grammar()
            universe = set(engine_confidence.token_universe(np, grammar, pieces, eog).tolist())
            assert len(universe) < 1000, task
            for text in texts:
                sampler = L.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
                rest = text.encode()
                while True:
                    view["id"], view["logit"] = np.arange(n, dtype=np.int32), 0.0
                    L.llama_sampler_apply(sampler, ctypes.byref(L.llama_token_data_array(buf, n, -1, False)))
                    allowed = set(np.flatnonzero(np.isfinite(view["logit"])).tolist())
                    assert allowed and allowed <= universe, (task, text, sorted(allowed - universe)[:5])
                    if not rest:
                        break
                    tok = max((a for a in allowed if pieces[a] and rest.startswith(pieces[a])),
                              key=lambda a: len(pieces[a]))
                    L.llama_sampler_accept(sampler, tok)
                    rest = rest[len(pieces[tok]):]
                L.llama_sampler_free(sampler)
    finally:
        L.llama_model_free(model)


# -- the real model ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def unit(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("confidence")
    src = write_reports(tmp / "in.parquet", texts=[M1_PLAIN, CHEST])
    cols = ColumnOptions()
    plan = build_plan(AnnotateOptions((str(src),), str(tmp / "out.parquet"), columns=cols, model="smollm2",
                                      tasks=",".join(CLOSED)))
    (start, table), = iter_units(plan.files[0], "utf-8", cols.text_columns(), 8)
    work = prepare(0, str(src), start, table, cols, plan.heads, plan.head_models, plan.recipes.profiles, {})
    assert work.requests and all(r.confidence for r in work.requests)
    (name, spec), = plan.models.items()
    return plan, work, name, spec, {h.recipe.id: h.grammar() for h in plan.heads}


@pytest.fixture(scope="module")
def outputs(unit):
    plan, work, name, spec, grammars = unit
    batched = BatchedEngine(spec, 2, 0, grammars)
    try:
        first = run_unit({name: batched}, work.requests)
        again = run_unit({name: batched}, work.requests)
    finally:
        batched.close()
    simple = run_unit({name: LlamaEngine(spec, 2, 0, grammars)}, work.requests)
    return first, again, simple


def _table(unit, completions: list[Completion]) -> dict[str, list]:
    plan, work, *_ = unit
    return assemble(work, plan.heads, completions, "", [], plan.head_models, False).to_pydict()


def _conf_columns(table: dict) -> list[str]:
    return [c for c in table if c.endswith("confidence")]


def test_confidences_are_probabilities_for_every_ok_head_and_equal_on_a_rerun(unit, outputs):
    first, again, _ = outputs
    table = _table(unit, first)
    assert len(_conf_columns(table)) == 4 + 14
    for col in _conf_columns(table):
        task = col.split("__")[0]
        for status, value in zip(table[f"{task}__status"], table[col]):
            if status == "ok":
                assert value is not None and 0.0 <= value <= 1.0 and math.isfinite(value), col
            else:
                assert value is None, col
    assert [c.steps for c in first] == [c.steps for c in again]
    assert _table(unit, again) == table


def test_simple_and_batched_engines_agree(unit, outputs):
    first, _, simple = outputs
    assert first == simple   # the same texts (steps are not compared by ==)
    assert all(c.steps is not None for c in first + simple if c.finish != "error")
    for b, s in zip(first, simple):
        assert [x[:2] for x in b.steps] == [x[:2] for x in s.steps]
        assert max(abs(x[2] - y[2]) for x, y in zip(b.steps, s.steps)) < TOLERANCE
    tb, ts = _table(unit, first), _table(unit, simple)
    for col in _conf_columns(tb):
        for x, y in zip(tb[col], ts[col]):
            assert (x is None) == (y is None) and (x is None or abs(x - y) < TOLERANCE), col


@pytest.fixture(scope="module")
def annotated(tmp_path_factory) -> pa.Table:
    """`radbatch annotate` with m_staging on the fine-tuned member smollm2-ft-a (the shipped routing now sends
    m_staging to the rules member, which writes no confidence)."""
    tmp = tmp_path_factory.mktemp("confidence_cli")
    src = write_reports(tmp / "in.parquet", texts=[M1_PLAIN, M1_STAGED, *CONTRADICTORY])
    out = tmp / "out.parquet"
    res = run_cli("annotate", src, "-o", out, "--tasks", "m_staging,radiology_qa", "--question", "Any liver lesion?",
                  "--model", "smollm2-ft-a", "--workers", "1", "--threads", "2")
    assert res.returncode == 0, res.stderr
    return pq.read_table(out)


def test_annotate_writes_float32_confidence_columns(annotated):
    assert annotated.schema.field("m_staging__confidence").type == pa.float32()
    assert not [n for n in annotated.schema.names if n.startswith("radiology_qa") and "confidence" in n]
    rows = annotated.to_pydict()
    assert rows["m_staging__status"] == ["ok"] * 4
    assert all(0.0 <= v <= 1.0 for v in rows["m_staging__confidence"])


def test_plainly_stated_stage_is_confident_and_a_contradictory_report_less_so(annotated):
    """The fine-tuned m_staging member (smollm2-ft-a) on two reports that state M1 plainly and two that state both.

    Measured while writing this (docs/performance.md, "Confidence"): plain 0.90 and 0.92, contradictory 0.81 and
    0.85. That member also answers M1 to plainly M0 reports (0.79-0.92), so an M0 case is not asserted here."""
    rows = annotated.to_pydict()
    stage, conf = rows["m_staging__stage"], rows["m_staging__confidence"]
    assert stage[:2] == ["M1", "M1"], (stage, conf)     # the plain reports: the model reads them right
    assert min(conf[:2]) > 0.85, conf
    assert max(conf[2:]) < min(conf[:2]), conf          # the reports that say both
