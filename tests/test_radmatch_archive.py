"""finetune/radmatch_archive.py: radmatch's report files (wheel or folder layout) become an annotate archive.

The real package is not a dependency; these files are written here in its layout (plumbing only: the run on
the real reports is in docs/finetune-results.md).
"""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "finetune" / "radmatch_archive.py"
spec = importlib.util.spec_from_file_location("radmatch_archive", SCRIPT)
radmatch_archive = importlib.util.module_from_spec(spec)
spec.loader.exec_module(radmatch_archive)

FILES = {
    "radmatch/assets/fewshot/chest-xr/reports_gt/example_2.txt": "FINDINGS: No effusion.\nIMPRESSION: Normal.",
    "radmatch/assets/fewshot/chest-xr/reports_gt/example_10.txt": "IMPRESSION: Small effusion.",
    "radmatch/assets/fewshot/brain-mr/reports_pred/example_1.txt": "IMPRESSION: No acute infarct.",
    "radmatch/assets/fewshot/brain-mr/findings_gt/example_1.json": "{}",          # not a report
    "radmatch/assets/prompts/prompt_matching.md": "not a report",
}


def test_wheel_and_folder_give_the_same_archive(tmp_path):
    wheel = tmp_path / "radmatch-0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, text in FILES.items():
            z.writestr(name, text)
    folder = tmp_path / "site-packages"
    for name, text in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    tables = [radmatch_archive.archive(radmatch_archive.read_reports(p)) for p in (wheel, folder)]
    assert tables[0].equals(tables[1])
    rows = tables[0].to_pylist()
    assert [r["report_id"] for r in rows] == ["brain-mr/pred/1", "chest-xr/gt/2", "chest-xr/gt/10"]  # numeric order
    assert [r["modality"] for r in rows] == ["MR", "XR", "XR"]
    assert rows[1]["report_text"] == FILES["radmatch/assets/fewshot/chest-xr/reports_gt/example_2.txt"]
    assert {r["question"] for r in rows} == {radmatch_archive.QUESTION}
    assert "patient_id" not in tables[0].column_names  # a pred copy is not a later study of the gt report


def test_an_unknown_bundle_is_refused(tmp_path):
    path = tmp_path / "radmatch/assets/fewshot/knee-mr/reports_gt/example_1.txt"
    path.parent.mkdir(parents=True)
    path.write_text("x", encoding="utf-8")
    with pytest.raises(ValueError, match="knee-mr"):
        radmatch_archive.archive(radmatch_archive.read_reports(tmp_path))
