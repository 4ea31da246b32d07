"""`--report DIR`: report.html and its PNG charts exist, have real content, and load in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from radbatch.evaluation import Settings, evaluate
from radbatch.evaluation.synthetic import write_synthetic, write_table

CHROMIUM = Path("/usr/bin/chromium")
CHECK = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]);
  document.body.setAttribute('data-images', JSON.stringify(imgs));
});</script></body>"""


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    paths = write_synthetic(tmp_path_factory.mktemp("synthetic"))
    out = tmp_path_factory.mktemp("report")
    evaluate([paths["run_a"], paths["run_b"]], paths["gold"], report_dir=out, settings=Settings(resamples=200))
    return out


def image_sources(page: Path) -> list[str]:
    return re.findall(r"<img src='([^']+)'", page.read_text())


def test_report_pngs_exist_and_have_content(report):
    from matplotlib.image import imread

    sources = image_sources(report / "report.html")
    # per head: summary chart and a confusion matrix per run (classification heads) or a detail chart
    assert len(sources) >= 9 * 2 and len(set(sources)) == len(sources)
    for src in sources:
        assert "/" not in src and not src.startswith("file:")  # relative, beside report.html
        png = report / src
        assert png.stat().st_size > 5_000, src
        pixels = imread(png)
        assert (pixels != pixels[0, 0]).any(), src  # more than one distinct pixel value
    assert {"rads_assignment_confusion_a.png", "radiology_ner_detail.png", "comparison_m_staging.png"} <= set(sources)
    data = json.loads((report / "metrics.json").read_text())
    assert len(data["runs"]) == 2 and data["comparison"]["m_staging"]["stage/accuracy"]["diff"] > 0


def chromium_images(page: Path, tmp_path: Path) -> list[list]:
    """Load `page` in headless Chromium and return [src, loaded] for each <img>."""
    probe = page.with_name("probe_" + page.name)
    probe.write_text(page.read_text().replace("</body>", CHECK))
    dom = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    probe.unlink()
    found = re.search(r'data-images="([^"]*)"', dom)
    assert found, dom[:500]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (the Makefile installs it)")
def test_report_loads_in_headless_chromium_without_missing_images(report, tmp_path):
    images = chromium_images(report / "report.html", tmp_path)
    assert len(images) == len(image_sources(report / "report.html"))
    assert [src for src, loaded in images if not loaded] == []
    # the probe itself notices a missing image
    broken = tmp_path / "broken" / "report.html"
    broken.parent.mkdir()
    shutil.copy(report / "report.html", broken)
    assert not all(loaded for _, loaded in chromium_images(broken, tmp_path))


def test_report_renders_for_a_head_with_nothing_scored(tmp_path):
    rows = [{"source_file": "in.parquet", "source_row": i, "m_staging__status": "not_applicable", "m_staging__stage": None,
             "gold__m_staging__stage": "M0"} for i in range(3)]
    write_table(tmp_path / "p.parquet", rows)
    result = evaluate([tmp_path / "p.parquet"], report_dir=tmp_path / "rep", settings=Settings(resamples=50))
    head = result.runs[0].heads["m_staging"]
    assert head.counts["scored"] == 0 and head.counts["not_applicable"] == 3
    assert (tmp_path / "rep" / "report.html").is_file()
    assert json.loads((tmp_path / "rep" / "metrics.json").read_text())["runs"][0]["heads"]["m_staging"]["metrics"] == {}
