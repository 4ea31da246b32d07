"""Answer schemas: parse(render(x)) == x, the grammar accepts every rendered answer and rejects junk."""

from __future__ import annotations

import pytest
from llama_cpp import Llama

from radbatch.errors import RowError
from radbatch.heads.grammar_check import grammar_accepts
from radbatch.heads.models import embedded_path
from radbatch.heads.recipes import load_recipes

TASKS = load_recipes().tasks
CASES = {
    "rads_assignment": [{"system": "BI-RADS", "category": "4B"}, {"system": "none", "category": None},
                        {"system": "LI-RADS", "category": "LR-TR viable"}, {"system": "Lung-RADS", "category": "4X"}],
    "m_staging": [{"stage": "M0"}, {"stage": "M1"}],
    "n_staging": [{"node_involvement": "negative", "stage": "N0"}, {"node_involvement": "positive", "stage": "N3"}],
    "radiology_nli": [{"label": "entailment"}, {"label": "contradiction"}, {"label": "neutral"}],
    "abnormality_detection": [
        {"atelectasis": "positive", "edema": "negative", "no_finding": None, "support_devices": "uncertain"},
        {"no_finding": "positive"}, {}],
    "radiology_ner": [{"entities": [{"text": "right lower lobe", "label": "ANAT-DP"},
                                    {"text": "effusion", "label": "OBS-DA"}]}, {"entities": []}],
    "temporal_comparison": [{"changes": [{"change": "worsened", "cue": "increased effusion", "entity": "effusion"},
                                         {"change": "unchanged", "cue": "stable nodule", "entity": "nodule"}]},
                            {"changes": []}],
    "impression_generation": [{"text": "No acute disease.\n2. Stable 4 mm nodule."}],
    "radiology_qa": [{"answer": "Yes, small."}],
}
JUNK = {"m_staging": "M2", "n_staging": "Negative, N1", "radiology_nli": "maybe", "rads_assignment": "BI-RADS 7",
        "abnormality_detection": "Edema: positive\nAtelectasis: negative",
        "radiology_ner": "- lung [ANAT]", "temporal_comparison": "- [Better] lung (related to: lung)"}


@pytest.fixture(scope="module")
def vocab_model():
    return Llama(str(embedded_path()), vocab_only=True, verbose=False)


def _full(task, values):
    cols = TASKS[task].answer.columns()
    return {c: values.get(c) for c in cols}


def test_every_head_has_cases():
    assert set(CASES) == set(TASKS)


@pytest.mark.parametrize("task,values", [(t, v) for t, vs in CASES.items() for v in vs])
def test_round_trip_and_grammar(task, values, vocab_model):
    answer = TASKS[task].answer
    text = answer.render(values)
    parsed = answer.parse(text)
    expected = _full(task, values)
    if task == "abnormality_detection":
        expected = {c: values.get(c) for c in answer.columns()}
    assert parsed == expected
    assert grammar_accepts(vocab_model, answer.grammar(), text)


@pytest.mark.parametrize("task,text", sorted(JUNK.items()))
def test_junk_is_rejected_by_parser_and_grammar(task, text, vocab_model):
    answer = TASKS[task].answer
    with pytest.raises(RowError):
        answer.parse(text)
    assert not grammar_accepts(vocab_model, answer.grammar(), text)


def test_qwen3_think_block_is_stripped():
    assert TASKS["m_staging"].answer.parse("<think>\n\n</think>\n\nM1") == {"stage": "M1"}
