"""route: the model that is better on dev wins each head; the routing file it writes is accepted by annotate."""

from __future__ import annotations

from pathlib import Path

from radbatch.route_selection import Choice, _choose
from radbatch.heads.routing import load_routing
from conftest import REPO, run_cli


def test_choose_prefers_score_then_cheaper_model():
    scores = {"big": {"m_staging": ("accuracy", 0.8, 10), "n_staging": ("accuracy", 0.5, 10)},
              "small": {"m_staging": ("accuracy", 0.6, 10), "n_staging": ("accuracy", 0.5, 10)}}
    costs = {"big": 2000, "small": 100}
    m = _choose("m_staging", ["big", "small"], scores, costs)
    assert (m.model, m.score, m.runner_up, m.runner_up_score) == ("big", 0.8, "small", 0.6)
    assert _choose("n_staging", ["big", "small"], scores, costs).model == "small"  # tie -> cheaper
    assert _choose("radiology_qa", ["big", "small"], scores, costs) == Choice(
        "radiology_qa", "none", "small", None, 0, None, None)


def test_route_on_a_constructed_dev_archive(tmp_path: Path):
    """Two candidates on the same weights; `cramped` has a context too small for these (padded) reports, so
    it errors on every row and must lose every measured head."""
    import polars as pl
    models = tmp_path / "models.toml"
    models.write_text('[models.good]\npath = "embedded"\ncontext_size = 2048\n\n'
                      '[models.cramped]\npath = "embedded"\ncontext_size = 256\n')
    dev = tmp_path / "dev.parquet"
    padding = "\nAddendum: this examination was reviewed at the departmental conference." * 12
    (pl.read_parquet(REPO / "sample_data" / "reports.parquet").head(16)
     .with_columns(pl.col("report_text") + padding).write_parquet(dev))
    routing = tmp_path / "routing.toml"
    res = run_cli("route", dev, "--models", models, "-o", routing,
                  "--tasks", "m_staging,n_staging", "--limit", "16", "--work-dir", tmp_path / "work")
    assert res.returncode == 0, res.stderr
    r = load_routing(routing, {"rads_assignment", "impression_generation", "temporal_comparison", "radiology_ner",
                               "n_staging", "m_staging", "radiology_nli", "abnormality_detection", "radiology_qa"},
                     {"good", "cramped"})
    assert r.routes["m_staging"] == "good" and r.routes["n_staging"] == "good"
    assert r.scores["m_staging"]["runner_up"] == "cramped" and r.scores["m_staging"]["runner_up_score"] == 0.0
    assert r.status == "provisional"  # heads without dev measurements keep it provisional
    src = tmp_path / "in.parquet"
    src.write_bytes((REPO / "sample_data" / "reports.parquet").read_bytes())
    res = run_cli("annotate", src, "-o", tmp_path / "o.parquet", "--models-file", models, "--routing-file", routing,
                  "--tasks", "m_staging", "--limit", "8", "-q")
    assert res.returncode == 0, res.stderr


def test_shipped_ensemble_adapters_are_for_the_embedded_base_and_routed():
    """recipes/models.toml declares the embedded ensemble: at least two adapters, small, stamped with the
    embedded model's sha256; a measured routing.toml sends every head to an adapter member or to the rules
    member (only heads the rules serve), with its dev score."""
    from radbatch.finetune.adapter import BASE_SHA_KEY, adapter_metadata
    from radbatch.heads.models import embedded_path, load_models, sha256_file
    from radbatch.heads.recipes import load_recipes
    recipes = load_recipes()
    models = load_models(REPO / "recipes" / "models.toml", set(recipes.profiles))
    adapters = {name: spec.adapter for name, spec in models.items() if spec.adapter}
    assert len(adapters) >= 2
    base = sha256_file(str(embedded_path()))
    for name, adapter in adapters.items():
        assert models[name].path == "embedded"
        meta = adapter_metadata(adapter)
        assert meta["general.type"] == "adapter" and meta[BASE_SHA_KEY] == base, name
        assert Path(adapter).stat().st_size < 4 * 2**20, name
    routing = load_routing(REPO / "recipes" / "routing.toml", set(recipes.tasks), set(models))
    if routing.status == "measured":
        from radbatch.engines.rules import HEADS as RULES_HEADS
        assert set(routing.routes.values()) <= set(adapters) | {"rules"}
        assert all(task in RULES_HEADS for task, model in routing.routes.items() if model == "rules")
        for task, score in routing.scores.items():
            assert score["model"] == routing.routes[task] and score["n"] > 0


def test_shipped_adapter_is_refused_on_another_base(tmp_path: Path):
    """The embedded model with one byte more is another base: annotate stops before any work, exit 3."""
    from radbatch.heads.models import embedded_path
    from radbatch.heads.recipes import load_recipes
    from radbatch.heads.models import load_models
    adapter = next(s.adapter for s in load_models(REPO / "recipes" / "models.toml",
                                                  set(load_recipes().profiles)).values() if s.adapter)
    other = tmp_path / "other-base.gguf"
    other.write_bytes(embedded_path().read_bytes() + b"\0")
    src = tmp_path / "in.parquet"
    src.write_bytes((REPO / "sample_data" / "reports.parquet").read_bytes())
    out = tmp_path / "o.parquet"
    res = run_cli("annotate", src, "-o", out, "--model", other, "--adapter", adapter, "--tasks", "m_staging",
                  "--limit", "2", "-q")
    assert res.returncode == 3, res.stderr
    assert f"adapter {Path(adapter).resolve()} was trained on embedded (SmolLM2-135M-Instruct.Q4_1.gguf)" in res.stderr
    assert not out.exists()


def test_shipped_calibration_is_for_heads_an_adapter_member_serves():
    """recipes/calibration.toml (issue 17) is stored with the routing: it reads strictly, and every head it holds a
    temperature for is routed to a model-file member (the rules member writes no confidence), fitted on that
    member's dev annotations."""
    import tomllib

    from radbatch.evaluation.calibration import read_calibration
    from radbatch.evaluation.confidence import confidence_tasks
    from radbatch.heads.models import load_models
    from radbatch.heads.recipes import load_recipes
    recipes = load_recipes()
    models = load_models(REPO / "recipes" / "models.toml", set(recipes.profiles))
    routing = load_routing(REPO / "recipes" / "routing.toml", set(recipes.tasks), set(models))
    temperatures = read_calibration(REPO / "recipes" / "calibration.toml", confidence_tasks())
    assert temperatures and all(t > 0 for t in temperatures.values())
    fitted_on = tomllib.loads((REPO / "recipes" / "calibration.toml").read_text())["fitted_on"]
    for task in temperatures:
        model = routing.routes[task]
        assert not models[model].is_rules, task
        assert fitted_on == f"dev-{model}.parquet", task
