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


def _diff(low: float):
    from radbatch.evaluation.result import DiffResult
    return DiffResult(0.0, 0.0, low + 0.01, low, low + 0.02, 0.5, 10)


def test_a_second_model_member_must_win_beyond_noise():
    """Plumbing of _fewer_members (the paired comparison is stubbed here; the next test runs it on real files)."""
    from radbatch.route_selection import _fewer_members
    scores = {"a": {"t1": ("acc", 0.9, 10), "t2": ("acc", 0.8, 10), "t3": ("acc", 0.7, 10)},
              "b": {"t1": ("acc", 0.8, 10), "t2": ("acc", 0.81, 10), "t3": ("acc", 0.9, 10)},
              "rules": {"t4": ("acc", 1.0, 10)}}
    choices = [_choose(t, ["a", "b", "rules"], scores, {"a": 2, "b": 2, "rules": 0}) for t in ("t1", "t2", "t3", "t4")]
    assert [c.model for c in choices] == ["a", "b", "b", "rules"]
    calls = []

    def compare(task, main, other):
        calls.append((task, main, other))
        return _diff(-0.01) if task == "t2" else _diff(0.05)   # t2: within noise; t3: b beyond noise

    b_main = {c.task: c for c in _fewer_members(choices, {"a": False, "b": False, "rules": True}, scores, compare)}
    assert calls == [("t1", "b", "a")]   # b serves two heads, so it is the main member; only a's head is checked
    assert b_main["t1"].model == "a"     # ... and a wins t1 beyond noise (stub), so it stays
    skewed = [Choice(c.task, c.metric, "a" if c.task == "t2" else c.model, c.score, c.n, None, None) for c in choices]
    out = {c.task: c for c in _fewer_members(skewed, {"a": False, "b": False, "rules": True}, scores, compare)}
    assert out["t3"].model == "b"        # b's own head, beyond noise: stays
    assert out["t4"].model == "rules"    # the rules member is never moved
    assert out["t1"].model == "a" and out["t2"].model == "a"   # a is main now (t1, t2)


def test_the_shipped_routing_is_what_route_chooses_from_the_committed_dev_files():
    """Routing version 5 from the committed dev annotations of its three candidates, through route's own
    choose() (real scores, real paired comparisons, real costs): step 2,250 scored higher on impression and N
    staging, within noise, so they stay on step 3,000."""
    from radbatch.heads.models import load_models
    from radbatch.heads.recipes import load_recipes
    from radbatch.route_selection import choose
    recipes = load_recipes()
    models = load_models(REPO / "recipes" / "models.toml", set(recipes.profiles))
    names = ["smollm2-ft-v3", "smollm2-ft-v3-3000", "rules"]
    routed = choose(REPO / "finetune" / "runs" / "v3-eval" / "route", {n: models[n] for n in names},
                    list(recipes.order))
    shipped = load_routing(REPO / "recipes" / "routing.toml", set(recipes.tasks), set(models))
    assert {c.task: c.model for c in routed} == shipped.routes
    assert {c.task for c in routed if c.note} == {"impression_generation", "n_staging"}
    assert {c.task: round(c.score, 4) for c in routed} == {t: s["dev_score"] for t, s in shipped.scores.items()}
