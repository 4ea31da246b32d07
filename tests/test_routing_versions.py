"""A new default routing never strands an output: runs keep the routing they recorded until --restart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from conftest import REPO, run_cli, write_reports


def _recipes(tmp_path: Path, m_staging: str, version: int) -> Path:
    """A copy of recipes/ whose default routing sends m_staging to `m_staging` (routing version `version`)."""
    root = tmp_path / f"recipes-v{version}"
    if not root.exists():
        shutil.copytree(REPO / "recipes", root)
        text = (REPO / "recipes" / "models.toml").read_text().replace('"../adapters/', f'"{REPO}/adapters/')
        (root / "models.toml").write_text(text)
    routes = {t: "smollm2" for t in ("rads_assignment", "impression_generation", "temporal_comparison",
                                     "radiology_ner", "n_staging", "radiology_nli", "abnormality_detection",
                                     "radiology_qa")}
    routes["m_staging"] = m_staging
    (root / "routing.toml").write_text(f'version = {version}\nstatus = "provisional"\n\n[routes]\n'
                                       + "".join(f'{t} = "{m}"\n' for t, m in routes.items()))
    return root


def _annotate(src, out, recipes: Path, *extra):
    return run_cli("annotate", src, "-o", out, "--tasks", "m_staging", "--workers", "1", *extra,
                   env={"RADBATCH_RECIPES": str(recipes)})


def test_an_output_keeps_its_recorded_default_routing_until_restart(tmp_path):
    src = write_reports(tmp_path / "reports.parquet", n=3)
    out = tmp_path / "out.parquet"
    first = _annotate(src, out, _recipes(tmp_path, "rules", 1))
    assert first.returncode == 0, first.stderr
    assert set(pq.read_table(out).column("m_staging__model").to_pylist()) == {"rules"}
    info = json.loads((tmp_path / "out.parquet.radbatch" / "run.json").read_text())
    assert info["routing"] == {"source": "default", "version": 1, "routes": info["routing"]["routes"]}

    upgraded = _recipes(tmp_path, "smollm2", 2)            # a new default ships: m_staging moves to smollm2
    again = _annotate(src, out, upgraded)
    assert again.returncode == 0, again.stderr
    assert "Nothing to do" in again.stdout
    assert "recorded when this output was started (routing version 1); the default is now version 2" in again.stderr

    fresh = _annotate(src, out, upgraded, "--restart")
    assert fresh.returncode == 0, fresh.stderr
    assert set(pq.read_table(out).column("m_staging__model").to_pylist()) == {"smollm2"}


def test_an_unfinished_run_resumes_with_the_models_it_recorded(tmp_path):
    """The plan of an unfinished run under a newer default uses the recorded routes, so its run key matches."""
    from radbatch.annotation.output import RunStore
    from radbatch.annotation.plan import AnnotateOptions, build_plan
    import os

    src = write_reports(tmp_path / "reports.parquet", n=3)
    out = str(tmp_path / "out.parquet")
    os.environ["RADBATCH_RECIPES"] = str(_recipes(tmp_path, "rules", 1))
    try:
        old = build_plan(AnnotateOptions((str(src),), out, tasks="m_staging"))
        store = RunStore(out)
        store.begin(old.run_key, old.key_material, False,
                    {"source": "default", "routes": old.routing.routes, "version": 1})
        os.environ["RADBATCH_RECIPES"] = str(_recipes(tmp_path, "smollm2", 2))
        resumed = build_plan(AnnotateOptions((str(src),), out, tasks="m_staging"))
        assert resumed.routing.status == "recorded" and resumed.run_key == old.run_key
        restarted = build_plan(AnnotateOptions((str(src),), out, tasks="m_staging", restart=True))
        assert restarted.routing.routes["m_staging"] == "smollm2" and restarted.run_key != old.run_key
        chosen = build_plan(AnnotateOptions((str(src),), out, tasks="m_staging", model="smollm2"))
        assert chosen.routing.source == "model" and chosen.run_key != old.run_key
    finally:
        os.environ.pop("RADBATCH_RECIPES", None)
