"""The task registry (radbatch/heads/recipes.py) is the one place that knows what a head is.

A tenth, closed-label head added as ONE recipe file in a copy of recipes/ shows up in `radbatch tasks`, in a real
annotate run's output columns (embedded SmolLM2, base model), in eval's metrics (gold the test writes) and in
finetune's data step; nothing else is edited. Recipe problems are all reported in one error.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from radbatch.errors import RecipeError
from radbatch.heads.recipes import load_recipes
from conftest import REPO, REPORTS, run_cli, write_reports

NINE = ("rads_assignment", "impression_generation", "temporal_comparison", "radiology_ner", "n_staging",
        "m_staging", "radiology_nli", "abnormality_detection", "radiology_qa")   # the order before the registry
NEW = "effusion_presence"
NEW_RECIPE = '''# Task head (test only): is a pleural effusion present? Used by `radbatch annotate`.
id = "effusion_presence"
version = 1
description = "Pleural effusion present: yes / no"
inputs = ["report"]
max_tokens = 4
instruction = "Is there a pleural effusion? Answer yes or no."

[answer]
kind = "choice"

[[answer.options]]
text = "yes"
values = { present = "yes" }

[[answer.options]]
text = "no"
values = { present = "no" }

[[columns]]
name = "present"
type = "string"
'''


@pytest.fixture(scope="module")
def ten(tmp_path_factory) -> Path:
    """A copy of recipes/ plus one recipe file: tasks/effusion_presence.toml."""
    root = tmp_path_factory.mktemp("registry") / "recipes"
    shutil.copytree(REPO / "recipes", root)
    (root / "tasks" / f"{NEW}.toml").write_text(NEW_RECIPE)
    return root


def test_shipped_order_is_the_order_output_columns_always_had():
    recipes = load_recipes()
    assert recipes.order == NINE
    primaries = {t: r.primary_metric for t, r in recipes.tasks.items()}
    assert primaries == {
        "rads_assignment": "accuracy", "impression_generation": "rouge_l", "temporal_comparison": "jaccard",
        "radiology_ner": "rouge_l", "n_staging": "stage/accuracy", "m_staging": "stage/accuracy",
        "radiology_nli": "label/accuracy", "abnormality_detection": "per_label_accuracy", "radiology_qa": "rouge_l"}


def test_a_new_head_comes_last_with_a_metric_chosen_by_its_kind(ten):
    recipes = load_recipes(ten)
    assert recipes.order == NINE + (NEW,)
    head = recipes.task(NEW)
    assert (head.kind, head.fields, head.primary_field, head.primary_metric) == \
        ("choice", ("present",), "present", "present/accuracy")


def test_tasks_command_lists_the_new_head(ten):
    res = run_cli("tasks", env={"RADBATCH_RECIPES": str(ten)})
    assert res.returncode == 0, res.stderr
    heads = [line.split(" ")[0] for line in res.stdout.splitlines() if not line.startswith(" ")]
    assert heads == [*NINE, NEW]
    tail = res.stdout.splitlines()[-7:]
    assert tail == [
        f"{NEW} (v1): Pleural effusion present: yes / no",
        "  inputs: report; max tokens 4",
        f"  {NEW}__present: string",
        f"  {NEW}__confidence: float",
        f"  {NEW}__status: string",
        f"  {NEW}__error: string",
        f"  {NEW}__model: string",
    ]


def test_annotate_writes_the_new_heads_columns(ten, tmp_path):
    """All ten heads on 2 rows (one empty text, so one report reaches the model), base model pinned."""
    src = write_reports(tmp_path / "in.parquet", texts=[REPORTS[7], "  "])
    out = tmp_path / "out.parquet"
    res = run_cli("annotate", src, "-o", out, "--model", "smollm2", "--workers", "1", "--threads", "2", "--quiet",
                  env={"RADBATCH_RECIPES": str(ten)})
    assert res.returncode == 0, res.stderr
    table = pq.read_table(out)
    heads = list(dict.fromkeys(c.split("__")[0] for c in table.column_names if "__" in c))
    assert heads == [*NINE, NEW]
    names = table.column_names
    first = names.index(f"{NEW}__present")
    assert names[first - 1] == "radiology_qa__model"    # right after the ninth head, before the row status
    assert names[first:first + 5] == [f"{NEW}__present", f"{NEW}__confidence", f"{NEW}__status",
                                      f"{NEW}__error", f"{NEW}__model"]
    assert table.schema.field(f"{NEW}__confidence").type == pa.float32()
    row = table.slice(0, 1).to_pylist()[0]
    assert row[f"{NEW}__status"] == "ok" and row[f"{NEW}__model"] == "smollm2"
    assert row[f"{NEW}__present"] in ("yes", "no")      # the grammar allows only the recipe's options
    assert 0.0 <= row[f"{NEW}__confidence"] <= 1.0
    assert table.column("status").to_pylist()[1] == "empty_text"


def test_eval_scores_the_new_head_with_its_kinds_metric(ten, tmp_path):
    gold, pred = ["yes", "no", "no", "yes"], ["yes", "yes", "no", "yes"]
    pq.write_table(pa.table({
        "source_file": ["in.parquet"] * 4, "source_row": pa.array(range(4), pa.int64()),
        "report_id": [f"r{i}" for i in range(4)], f"{NEW}__status": ["ok"] * 4,
        f"{NEW}__present": pred, f"gold__{NEW}__present": gold}), tmp_path / "p.parquet")
    res = run_cli("eval", tmp_path / "p.parquet", "--json", tmp_path / "m.json", env={"RADBATCH_RECIPES": str(ten)})
    assert res.returncode == 0, res.stderr
    assert f"{NEW}: 4 scored of 4 labelled" in res.stdout
    head = json.loads((tmp_path / "m.json").read_text())["runs"][0]["heads"][NEW]
    assert head["primary"] == "present/accuracy"
    fig = head["metrics"]["present/accuracy"]
    assert fig["value"] == pytest.approx(0.75) and fig["n"] == 4 and fig["summary"] is True
    assert fig["baseline"] == pytest.approx(0.5)  # majority: a tie, the first option (yes)
    assert head["extras"]["confusion"]["present"] == {"gold": ["yes", "no"], "predicted": ["yes", "no"],
                                                      "matrix": [[2, 0], [1, 1]]}


def test_finetune_data_step_turns_the_new_heads_gold_into_examples(ten, tmp_path):
    from radbatch.archive.reading import ColumnOptions
    from radbatch.finetune.data import DataOptions, PromptTokenizer, build_dataset, iter_examples
    from radbatch.finetune.recipe import load_finetune_recipe
    from radbatch.heads.models import ModelSpec, embedded_path

    labelled = tmp_path / "labelled.parquet"
    pq.write_table(pa.table({
        "report_id": ["a", "b", "c"], "report_text": [REPORTS[0], REPORTS[4], REPORTS[7]],
        f"gold__{NEW}__present": [" Yes", "no", None], "gold__m_staging__stage": [None, None, "M0"]}), labelled)
    recipes = load_recipes(ten)
    spec = ModelSpec("smollm2", str(embedded_path()), None, "chatml", 2048, "radbatch", "Apache-2.0")
    opts = DataOptions((str(labelled),), ColumnOptions())
    examples = list(iter_examples(opts, recipes, spec))
    assert [(e.task, e.answer, e.classes, e.row) for e in examples] == [
        (NEW, "yes", ("yes",), (0, 0)), (NEW, "no", ("no",), (0, 1)), ("m_staging", "M0", ("M0",), (0, 2))]
    prompt = "".join(text for text, _ in examples[0].prompt.parts)
    assert recipes.task(NEW).instruction in prompt

    from radbatch.finetune.base import go_offline, quiet_transformers
    go_offline()
    from transformers import AutoTokenizer
    quiet_transformers()
    p = embedded_path()
    ptok = PromptTokenizer(AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name, local_files_only=True))
    data = build_dataset(opts, recipes, spec, ptok, 2048, 0.0, 0)
    assert [s.task for s in data.train] == [NEW, NEW, "m_staging"]
    assert data.counts[NEW]["train"] == 2 and data.train[0].classes == ("yes",)
    assert ptok.tok.decode(data.train[1].ids[data.train[1].n_prompt:-1]) == "no"
    recipe = load_finetune_recipe(ten / "finetune" / "smollm2_135m_lora.toml", set(recipes.tasks))
    assert recipe.weight(NEW) == 1.0 and recipe.weight("rads_assignment") == 3.0


def test_every_recipe_problem_is_reported_in_one_error(ten, tmp_path):
    root = tmp_path / "recipes"
    shutil.copytree(ten, root)
    new = root / "tasks" / f"{NEW}.toml"
    new.write_text(NEW_RECIPE.replace('kind = "choice"', 'kind = "chioce"').replace("max_tokens = 4", "max_tokens = 0"))
    nli = root / "tasks" / "radiology_nli.toml"
    nli.write_text(nli.read_text().replace("max_tokens = 6", "max_tokens = 6\ntemperature = 0.1"))
    (root / "tasks" / "bad_toml.toml").write_text("id = \n")
    order = root / "task_order.toml"
    order.write_text(order.read_text().replace('"m_staging",', '"m_staging", "m_staging", "t_staging",')
                     + 'heads = ["x"]\n')
    expected = [
        f"{new}: max_tokens must be a positive integer",
        f"{new}: answer.kind 'chioce' unknown (known: choice, rads, text, labels, entities, changes)",
        f"{nli}: unknown key 'temperature'",
        f"{root / 'tasks' / 'bad_toml.toml'}: cannot read TOML",
        f"{order}: unknown key 'heads' (allowed: order)",
        f"{order}: order lists 'm_staging' more than once",
        f"{order}: order lists 't_staging', which has no recipe tasks/t_staging.toml",
    ]
    with pytest.raises(RecipeError) as info:
        load_recipes(root)
    problems = info.value.problems
    for text in expected:
        assert sum(p.startswith(text) for p in problems) == 1, (text, problems)
    assert len(problems) == len(expected)
    for args in (("recipes", "validate", root), ("tasks",), ("eval", tmp_path / "none.parquet")):
        res = run_cli(*args, env={"RADBATCH_RECIPES": str(root)})
        assert res.returncode != 0 and "Traceback" not in res.stderr, args
        assert all(text in res.stderr for text in expected), (args, res.stderr)
