"""Recipes are strict data: every shipped file validates; problems are all reported at once."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from radbatch.errors import RecipeError
from radbatch.heads.recipes import load_recipes
from radbatch.heads.validate import validate_all
from conftest import REPO, run_cli

RECIPES = REPO / "recipes"


def test_every_recipe_file_is_validated():
    checked = {p.resolve() for p in validate_all(RECIPES)}
    on_disk = {p.resolve() for p in RECIPES.rglob("*.toml")}
    assert on_disk and on_disk == checked


def test_validate_command_passes_on_shipped_recipes():
    res = run_cli("recipes", "validate")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("OK: ")


def test_the_nine_heads_load():
    assert set(load_recipes(RECIPES).tasks) == {
        "rads_assignment", "impression_generation", "temporal_comparison", "radiology_ner", "n_staging",
        "m_staging", "radiology_nli", "abnormality_detection", "radiology_qa"}


def test_bad_recipes_report_every_problem_at_once(tmp_path: Path):
    root = tmp_path / "recipes"
    shutil.copytree(RECIPES, root)
    m = root / "tasks" / "m_staging.toml"
    m.write_text(m.read_text().replace("max_tokens = 6", "max_tokens = 6\nmax_tokenz = 7"))
    n = root / "tasks" / "n_staging.toml"
    n.write_text(n.read_text().replace('type = "string"', 'type = "strng"', 1))
    with pytest.raises(RecipeError) as info:
        load_recipes(root)
    text = str(info.value)
    assert "unknown key 'max_tokenz'" in text and "m_staging.toml" in text
    assert "unknown type 'strng'" in text and "n_staging.toml" in text
    res = run_cli("recipes", "validate", root)
    assert res.returncode == 2
    assert "max_tokenz" in res.stderr and "strng" in res.stderr and "Traceback" not in res.stderr


def test_routing_to_unknown_model_lists_known(tmp_path: Path):
    root = tmp_path / "recipes"
    shutil.copytree(RECIPES, root)
    r = root / "routing.toml"
    r.write_text(re.sub(r'(?m)^m_staging = "[^"]*"$', 'm_staging = "qwen9"', r.read_text()))
    res = run_cli("recipes", "validate", root)
    assert res.returncode == 2
    assert "unknown model 'qwen9'. Known: rules, smollm2" in res.stderr


def test_validate_reads_calibration_files_strictly(tmp_path):
    """recipes/calibration.toml is checked by the reader eval uses: a head without confidences and a negative
    temperature are both reported."""
    import shutil
    root = tmp_path / "recipes"
    shutil.copytree(RECIPES, root)
    (root / "calibration.toml").write_text('schema = 1\nmethod = "binary-logit temperature"\n\n'
                                           "[heads.radiology_qa]\ntemperature = 1.0\n\n"
                                           "[heads.n_staging]\ntemperature = -2\n")
    with pytest.raises(RecipeError) as exc:
        validate_all(root)
    text = str(exc.value)
    assert "heads.radiology_qa: not a head with confidences" in text
    assert "heads.n_staging.temperature must be a positive number" in text
