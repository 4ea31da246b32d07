"""Redraw docs/images/risk_coverage.png, the README's risk-coverage picture, from a CONSTRUCTED file.

    PYTHONPATH=. python docs/images/make_risk_coverage.py

400 m_staging rows: confidence drawn uniformly from [0.35, 1) with a seeded generator, and each row right with
probability 1 - 0.5 * (1 - confidence) ** 1.5 (higher confidence is more often right). Not real model output. The figure goes through `radbatch eval --target-precision 0.98
--report`, i.e. the same code and chart users get.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from radbatch.evaluation import Settings, evaluate

OUT = Path(__file__).resolve().parent / "risk_coverage.png"


def main() -> None:
    rng = np.random.default_rng(17)
    n = 400
    conf = np.round(rng.uniform(0.35, 1.0, n), 3)
    right = rng.uniform(size=n) < 1 - 0.5 * (1 - conf) ** 1.5
    table = pa.table({
        "source_file": ["constructed.parquet"] * n, "source_row": np.arange(n),
        "m_staging__status": ["ok"] * n, "m_staging__stage": np.where(right, "M1", "M0"),
        "m_staging__confidence": conf, "gold__m_staging__stage": ["M1"] * n})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "constructed.parquet"
        pq.write_table(table, path)
        result = evaluate([path], report_dir=Path(tmp) / "report", settings=Settings(resamples=10),
                          target_precision=0.98)
        t = result.runs[0].heads["m_staging"].calibration["raw"]["threshold"]
        shutil.copy(Path(tmp) / "report" / "m_staging_risk_coverage_run.png", OUT)
    print(f"wrote {OUT}: threshold {t['threshold']} coverage {t['coverage']:.3f} ({t['status']})", file=sys.stderr)


if __name__ == "__main__":
    main()
