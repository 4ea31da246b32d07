"""Every head's max_tokens leaves room for its right answers (issue 12: truncation at most 2% on every head).

The longest gold answer of each head on the dev archive (sample_data/quality_dev.parquet, 406 reports), rendered
exactly as the adapters are trained to answer (radbatch/finetune/data.py) and tokenized by the embedded model's
own vocabulary, plus its end-of-turn token, must fit the head's recipe max_tokens. NER's 160 failed this (its
longest dev answer is 182 tokens); both list heads now use RadLite's 256.
"""

from __future__ import annotations

import pytest

from conftest import REPO

DEV = REPO / "sample_data" / "quality_dev.parquet"


@pytest.fixture(scope="module")
def longest_answers() -> dict[str, int]:
    import llama_cpp

    from radbatch.archive.reading import ColumnOptions
    from radbatch.finetune.data import DataOptions, iter_examples
    from radbatch.heads.models import load_models, materialise
    from radbatch.heads.recipes import load_recipes

    recipes = load_recipes()
    spec = materialise(load_models(recipes.root / "models.toml", set(recipes.profiles))["smollm2"])
    vocab = llama_cpp.Llama(spec.path, vocab_only=True, verbose=False)
    cols = ColumnOptions(text="report_text", patient="patient_id", date="study_date", modality="modality",
                         question="question", hypothesis="hypothesis")
    longest: dict[str, int] = {}
    for ex in iter_examples(DataOptions((str(DEV),), cols), recipes, spec):
        n = len(vocab.tokenize(ex.answer.encode(), add_bos=False, special=False)) + 1   # + <|im_end|>
        longest[ex.task] = max(longest.get(ex.task, 0), n)
    return longest


def test_every_heads_longest_dev_answer_fits_its_max_tokens(longest_answers):
    from radbatch.heads.recipes import load_recipes

    tasks = load_recipes().tasks
    assert set(longest_answers) == set(tasks), "the dev archive has gold for every head"
    short = {t: (n, tasks[t].max_tokens) for t, n in longest_answers.items() if n > tasks[t].max_tokens}
    assert not short, f"longest dev answer (tokens) over max_tokens: {short}"
