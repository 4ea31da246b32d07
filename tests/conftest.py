"""Shared fixtures: small real archives (written by the tests themselves) and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parent.parent

REPORTS = [
    "EXAM: XR CHEST PA AND LATERAL\nINDICATION: Cough.\nCOMPARISON: Chest radiograph 2021-01-02.\n"
    "FINDINGS: Small right pleural effusion, increased since the prior study. No pneumothorax. "
    "Heart size is normal.\nIMPRESSION: Increased small right pleural effusion.",
    "MAMMOGRAM, BILATERAL SCREENING\nFINDINGS: Scattered fibroglandular densities. No suspicious mass or "
    "calcification.\nIMPRESSION: Negative screening mammogram. BI-RADS 1.",
    "CT CHEST, ABDOMEN AND PELVIS WITH CONTRAST\nINDICATION: Staging of colon cancer.\nFINDINGS: Enlarged "
    "right hilar lymph node measuring 1.8 cm. Multiple hypodense hepatic lesions compatible with "
    "metastases.\nIMPRESSION: Nodal and hepatic metastatic disease.",
    "US THYROID\nFINDINGS: Right lobe nodule 1.4 cm, solid, hypoechoic, with smooth margins.\n"
    "IMPRESSION: TI-RADS TR4 nodule in the right lobe. Fine needle aspiration recommended.",
    "XR CHEST PORTABLE\nFINDINGS: Endotracheal tube in good position. Bibasilar atelectasis. "
    "No pleural effusion.\nIMPRESSION: Support devices in place. Bibasilar atelectasis.",
    "CT CHEST LOW DOSE SCREENING\nFINDINGS: 5 mm solid nodule in the right upper lobe.\n"
    "IMPRESSION: Lung-RADS 2. Continue annual screening.",
    "MRI PROSTATE\nFINDINGS: 12 mm lesion in the left peripheral zone with marked restricted diffusion.\n"
    "IMPRESSION: PI-RADS 4 lesion.",
    "Chest radiograph. The lungs are clear. No effusion. Heart normal in size.",
]
QUESTIONS = ["Is there a pleural effusion?", None, "Are there liver lesions?", "Which lobe has the nodule?",
             "Is there a tube?", "How big is the nodule?", None, "Is there an effusion?"]


def write_reports(path: Path, n: int = 8, texts=None, ids=None, fmt: str = "parquet") -> Path:
    texts = texts if texts is not None else [REPORTS[i % len(REPORTS)] for i in range(n)]
    ids = ids if ids is not None else [f"R{i:04d}" for i in range(len(texts))]
    table = pa.table({"report_id": ids, "report_text": texts,
                      "question": [QUESTIONS[i % len(QUESTIONS)] for i in range(len(texts))]})
    if fmt == "csv":
        import pyarrow.csv as pacsv
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


def run_cli(*args: str, env: dict | None = None, timeout: int = 900, **kw) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "radbatch", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=kw.pop("cwd", REPO), **kw)


@pytest.fixture
def reports_parquet(tmp_path: Path) -> Path:
    return write_reports(tmp_path / "reports.parquet")
