"""Training-side pieces of issue 12: class-balanced sampling, the fixed per-head dev-loss set, the flatten check,
archives with gold for some heads only, the strict new recipe fields, and the training injection texts.

Cheap: no training here (tests/test_finetune.py trains a tiny model end to end). The dev-set test uses the embedded
SmolLM2's real tokenizer and annotate's real prompt rendering.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO, REPORTS, run_cli

from radbatch.finetune.data import Sample, class_balanced_weights
from radbatch.finetune.train import flatten_check


def _s(task: str, *classes: str) -> Sample:
    return Sample(task, np.zeros(3, dtype=np.int32), 1, tuple(classes))


# --- class-balanced sampling ---------------------------------------------------------------------------------


def test_balanced_sampling_draws_each_class_of_a_head_equally_and_keeps_the_head_share():
    samples = [_s("m_staging", "M0")] * 90 + [_s("m_staging", "M1")] * 10 + [_s("impression_generation")] * 50
    weights = {"m_staging": 1.0, "impression_generation": 2.0}
    natural = class_balanced_weights(samples, weights, 0.0)
    full = class_balanced_weights(samples, weights, 1.0)
    half = class_balanced_weights(samples, weights, 0.5)
    m0, m1, imp = slice(0, 90), slice(90, 100), slice(100, 150)
    assert natural[m0].sum() == pytest.approx(90) and natural[m1].sum() == pytest.approx(10)
    assert full[m0].sum() == pytest.approx(50) and full[m1].sum() == pytest.approx(50)    # 1:1
    assert half[m0].sum() / half[m1].sum() == pytest.approx(3.0)                           # sqrt(90/10)
    for w in (natural, full, half):
        assert w[:100].sum() == pytest.approx(100)          # the head's share: weight x samples, unchanged
        assert w[imp].sum() == pytest.approx(100) and len(set(w[imp])) == 1    # open head: natural
    assert len(set(full[m1])) == 1                          # within a class every sample alike


def test_balanced_sampling_counts_a_multi_label_sample_under_its_rarest_class():
    common = "No Finding: positive"
    samples = [_s("abnormality_detection", common)] * 8 + [_s("abnormality_detection", "Edema: positive",
                                                              "Cardiomegaly: positive")] * 2
    w = class_balanced_weights(samples, {"abnormality_detection": 1.0}, 1.0)
    assert w[:8].sum() == pytest.approx(w[8:].sum()) == pytest.approx(5.0)


def test_balanced_sampling_leaves_out_weight_zero_tasks():
    samples = [_s("m_staging", "M0"), _s("m_staging", "M1"), _s("n_staging", "N0")]
    w = class_balanced_weights(samples, {"m_staging": 1.0, "n_staging": 0.0}, 1.0)
    assert list(w) == [1.0, 1.0, 0.0]


def test_answer_classes_of_the_shipped_heads():
    from radbatch.finetune.data import answer_classes
    from radbatch.heads.recipes import load_recipes
    from radbatch.heads.tasks import head_instances
    heads = {h.recipe.id: h for h in head_instances(list(load_recipes().tasks.values()), ())}
    rads = heads["rads_assignment"]
    assert answer_classes(rads, "BI-RADS 4A") == answer_classes(rads, "TI-RADS TR3") == ("rads",)
    assert answer_classes(rads, rads.recipe.answer.none_text) == ("none",)
    assert answer_classes(heads["m_staging"], "M1") == ("M1",)
    assert answer_classes(heads["abnormality_detection"], "Edema: positive\nPleural Effusion: negative") == \
        ("Edema: positive", "Pleural Effusion: negative")
    assert answer_classes(heads["impression_generation"], "1. No acute findings.") == ()


# --- the flatten check ---------------------------------------------------------------------------------------


def _curve(values: list[float], every: int = 50) -> list:
    return [(i * every, v, {"m_staging": v * 2, "radiology_nli": 1.0}) for i, v in enumerate(values)]


def test_flatten_check_compares_the_last_quarter_of_the_steps():
    flat = flatten_check(_curve([3.0, 2.0, 1.5, 1.2, 1.0, 0.995, 0.99, 0.99, 0.985]))   # steps 0..400
    assert flat["checked"] and flat["window"] == [300, 400]
    assert flat["drop"] == pytest.approx((0.99 - 0.985) / 0.99, abs=1e-4) and flat["flattened"]
    assert flat["by_head"]["radiology_nli"]["flattened"] and flat["by_head"]["m_staging"]["flattened"]
    falling = flatten_check(_curve([3.0, 2.0, 1.5, 1.2, 1.0, 0.9, 0.8, 0.7, 0.6]))
    assert falling["window"] == [300, 400] and falling["drop"] == pytest.approx(0.25) and not falling["flattened"]
    assert not falling["by_head"]["m_staging"]["flattened"] and falling["by_head"]["radiology_nli"]["drop"] == 0


def test_flatten_check_needs_a_curve():
    assert flatten_check([])["checked"] is False
    assert flatten_check(_curve([2.0]))["checked"] is False
    assert flatten_check([(0, 2.0, {}), (40, 1.0, {})])["window"] == [0, 40]


# --- the fixed dev-loss set, and archives with gold for some heads only ---------------------------------------


@pytest.fixture(scope="module")
def ptok():
    pytest.importorskip("transformers")
    from radbatch.finetune.base import go_offline, quiet_transformers
    from radbatch.heads.models import embedded_path
    go_offline()
    from transformers import AutoTokenizer
    quiet_transformers()
    from radbatch.finetune.data import PromptTokenizer
    p = embedded_path()
    return PromptTokenizer(AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name, local_files_only=True))


def _archive(path: Path, n: int, offset: int = 0) -> Path:
    m = ["M0", "M1", None]
    pq.write_table(pa.table({
        "report_id": [f"D{offset + i:03d}" for i in range(n)],
        "patient_id": [f"Q{offset + i:03d}" for i in range(n)],
        "report_text": [REPORTS[i % len(REPORTS)] for i in range(n)],
        "gold__m_staging__stage": [m[i % 3] for i in range(n)],
        "gold__radiology_nli__label": [None] * n,
        "hypothesis": ["There is a pleural effusion."] * n,
    }), path)
    return path


def _real_phrasing(path: Path, n: int) -> Path:
    """Like finetune/v3_data.py's radlabels parts: abnormality gold only, the other columns null."""
    pq.write_table(pa.table({
        "report_id": [f"X{i:03d}" for i in range(n)],
        "report_text": ["FINDINGS: Small left pleural effusion. No pneumothorax."] * n,
        "gold__abnormality_detection__pleural_effusion": ["positive"] * n,
        "gold__abnormality_detection__pneumothorax": ["negative"] * n,
        "patient_id": pa.nulls(n, pa.string()), "hypothesis": pa.nulls(n, pa.string()),
    }), path)
    return path


def test_fixed_dev_set_is_the_same_for_every_run_and_per_head(ptok, tmp_path):
    from radbatch.archive.reading import ColumnOptions
    from radbatch.finetune.data import DataOptions, build_dataset
    from radbatch.heads.models import ModelSpec, embedded_path
    from radbatch.heads.recipes import load_recipes
    cols = ColumnOptions(patient="patient_id", hypothesis="hypothesis")
    spec = ModelSpec("smollm2", str(embedded_path()), None, "chatml", 2048, "radbatch", "Apache-2.0")
    train = _archive(tmp_path / "train.parquet", 12)
    dev = _archive(tmp_path / "dev.parquet", 30, offset=100)
    real = _real_phrasing(tmp_path / "real-dev.parquet", 5)
    opts = DataOptions((str(train),), cols)

    def build(seed, max_length, per_head=6):
        return build_dataset(opts, load_recipes(), spec, ptok, max_length, 0.0, seed, (str(dev), str(real)), per_head)

    a, b = build(1, 2048), build(2, 2048)
    shortest = min(len(s.ids) for s in a.train)
    c = build(1, shortest)
    assert a.fixed_dev == {"m_staging": 6, "abnormality_detection@real-dev": 5}
    same = [(s.task, s.ids.tobytes()) for s in a.dev]
    assert same == [(s.task, s.ids.tobytes()) for s in b.dev] == [(s.task, s.ids.tobytes()) for s in c.dev]
    assert len(c.train) < len(a.train) and any(len(s.ids) > shortest for s in c.dev)   # max_length: training only
    assert len(a.train) == 8 and {s.task for s in a.train} == {"m_staging"}
    bigger = build(1, 2048, per_head=10)
    assert [s.ids.tobytes() for s in bigger.dev if s.task == "m_staging"][:6] == \
        [s.ids.tobytes() for s in a.dev if s.task == "m_staging"]   # a larger set extends the smaller one


def test_training_archives_may_have_gold_for_different_heads(ptok, tmp_path):
    from radbatch.archive.reading import ColumnOptions
    from radbatch.finetune.data import DataOptions, build_dataset
    from radbatch.heads.models import ModelSpec, embedded_path
    from radbatch.heads.recipes import load_recipes
    cols = ColumnOptions(patient="patient_id", hypothesis="hypothesis")
    spec = ModelSpec("smollm2", str(embedded_path()), None, "chatml", 2048, "radbatch", "Apache-2.0")
    files = (str(_archive(tmp_path / "gen.parquet", 9)), str(_real_phrasing(tmp_path / "real.parquet", 4)))
    data = build_dataset(DataOptions(files, cols), load_recipes(), spec, ptok, 2048, 0.0, 0)
    assert {t: c["train"] for t, c in data.counts.items()} == {"m_staging": 6, "abnormality_detection": 4}
    real = [s for s in data.train if s.task == "abnormality_detection"]
    assert real[0].classes == ("Pleural Effusion: positive", "Pneumothorax: negative")


# --- recipes -------------------------------------------------------------------------------------------------


def test_new_recipe_fields_are_strict(tmp_path):
    from radbatch.errors import RecipeError
    from radbatch.finetune.recipe import load_finetune_recipe
    from radbatch.heads.recipes import recipes_dir
    text = (recipes_dir() / "finetune" / "smollm2_135m_lora.toml").read_text()
    ok = tmp_path / "ok.toml"
    ok.write_text(text + "class_balance = 1\ndev_per_head = 24\ndev_every = 40\n")
    recipe = load_finetune_recipe(ok)
    assert recipe.class_balance == 1.0 and isinstance(recipe.class_balance, float) and recipe.dev_per_head == 24
    assert recipe.dev_every == 40
    assert load_finetune_recipe(recipes_dir() / "finetune" / "smollm2_135m_lora.toml").class_balance == 0.0
    bad = tmp_path / "bad.toml"
    bad.write_text(text + "class_balance = 1.5\ndev_per_head = \"many\"\nbalance = true\ndev_every = 30\n")
    with pytest.raises(RecipeError) as err:
        load_finetune_recipe(bad)
    problems = "\n".join(err.value.problems if hasattr(err.value, "problems") else [str(err.value)])
    for p in ("class_balance must be in [0, 1]", "dev_per_head must be an integer", "unknown key 'balance'",
              "dev_every must be a multiple of checkpoint_every"):
        assert p in problems


def test_recipes_validate_accepts_the_shipped_recipes():
    done = run_cli("recipes", "validate")
    assert done.returncode == 0, done.stderr[-2000:]


# --- adversarial training reports ----------------------------------------------------------------------------


def test_training_injections_keep_the_report_and_add_one_payload():
    from radbatch.finetune.inject import TRAIN_INJECTIONS, inject
    rng = random.Random(0)
    report = "FINDINGS: Heart size normal. Lungs are clear. No effusion.\nIMPRESSION: Normal chest."
    seen = set()
    for _ in range(60):
        out = inject(report, rng)
        payload = [p for p in TRAIN_INJECTIONS if p in out]
        assert len(payload) == 1
        assert out.replace(payload[0], "").replace("\n", " ").split() == report.replace("\n", " ").split()
        assert out.index("IMPRESSION:") > out.index("FINDINGS:")
        seen.add(out.index(payload[0]) == 0)
    assert seen == {True, False}     # at the start sometimes, elsewhere other times


def test_the_injection_test_cases_are_not_the_training_injections():
    """bench/injection.py measures obedience on texts written for the test: none of its texts or payload words
    may occur in what training pasted into reports."""
    import importlib.util
    from radbatch.finetune.inject import TRAIN_INJECTIONS
    spec = importlib.util.spec_from_file_location("injection", REPO / "bench" / "injection.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    training = "\n".join(TRAIN_INJECTIONS).lower()
    assert len(bench.TEST_INJECTIONS) >= 10
    for text, word in bench.TEST_INJECTIONS:
        assert word in text and word.lower() not in training, word
        assert text not in TRAIN_INJECTIONS
        words = re.sub(r"<\|[a-z_]+\|>", " ", text.lower())   # chat markup is the attack's form, not its wording
        sentences = [s.strip() for s in words.replace("\n", ". ").split(". ") if len(s.strip()) > 20]
        assert sentences and not any(s in training for s in sentences), text


def test_the_training_archives_script_writes_owner_only_files(tmp_path):
    # finetune/v3_data.py writes report text (radlabels reports, injected copies): 0600 files in a 0700 folder.
    src = tmp_path / "src.parquet"
    run_cli("sample", "-n", "20", "--seed", "3", "--split", "train", "-o", str(src))
    out = tmp_path / "data" / "v3"
    subprocess.run([sys.executable, str(REPO / "finetune" / "v3_data.py"), "--adversarial-source", str(src),
                    "--solo-source", str(src), "-o", str(out)], check=True, cwd=REPO,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    names = sorted(p.name for p in out.iterdir())
    assert names == ["adversarial.parquet", "radlabels-dev.parquet", "radlabels-train.parquet",
                     "temporal-pairs.parquet", "temporal-solo.parquet"]
    assert (out.stat().st_mode & 0o777, (tmp_path / "data").stat().st_mode & 0o777) == (0o700, 0o700)
    assert {(out / n).stat().st_mode & 0o777 for n in names} == {0o600}
    assert pq.read_table(out / "adversarial.parquet").num_rows == 20


def _v3_data_and_sample(tmp_path: Path, n: int, seed: int):
    """finetune/v3_data.py as a module, and a train-split sample of n reports."""
    sys.path.insert(0, str(REPO / "finetune"))
    import v3_data
    src = tmp_path / "src.parquet"
    run_cli("sample", "-n", str(n), "--seed", str(seed), "--split", "train", "-o", str(src))
    return v3_data, pq.read_table(src)


def test_solo_follow_ups_have_no_prior_and_only_temporal_gold(tmp_path):
    from radbatch.evaluation.quality_archives import has_prior
    v3_data, table = _v3_data_and_sample(tmp_path, 120, 3)
    solo = v3_data.solo_followups(table)
    follow_ups = table.column("gold__temporal_comparison__changes").drop_null()
    assert solo.num_rows == len(follow_ups) > 0
    assert not any(has_prior(solo)) and any(has_prior(table))       # paired in the source, alone here
    for name in solo.column_names:
        if name.startswith("gold__"):
            assert solo.column(name).null_count == (0 if "temporal" in name else solo.num_rows), name


def test_temporal_pairs_answer_none_where_a_paired_report_states_no_comparison(tmp_path):
    from radbatch.archive.sections import mentions_comparison, split_sections
    from radbatch.evaluation.quality_archives import has_prior
    v3_data, table = _v3_data_and_sample(tmp_path, 400, 5)
    pairs = v3_data.temporal_pairs(table)
    before = table.column("gold__temporal_comparison__changes").to_pylist()
    after = pairs.column("gold__temporal_comparison__changes").to_pylist()
    texts = table.column("report_text").to_pylist()
    for b, a, paired, text in zip(before, after, has_prior(table), texts):
        if b is not None:
            assert a == b                                   # follow-ups keep their changes
        elif paired and not mentions_comparison(text, split_sections(text)):
            assert a == []                                  # rendered as the head's "None"
        else:
            assert a is None
    assert after.count([]) > 0 and pairs.num_rows == table.num_rows
    assert all(pairs.column(n).null_count == pairs.num_rows for n in pairs.column_names
               if n.startswith("gold__") and "temporal" not in n)
