"""Write one part of our radlabels split (train / dev / heldout) as an archive with gold columns.

    .venv/bin/python finetune/radlabels_archive.py dev -o ~/ft-data/radlabels-dev.parquet

Only reports synth_0401..synth_1000 are in any part (radbatch/evaluation/radlabels.py OURS).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow.parquet as pq

from radbatch.archive.private_files import open_private
from radbatch.evaluation import radlabels
from radbatch.heads.recipes import load_recipes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=sorted(radlabels.SPLIT_SIZES))
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    slugs = dict(load_recipes().tasks["abnormality_detection"].answer.labels)
    with open_private(Path(args.output)) as f:   # report text: owner-only
        pq.write_table(radlabels.archive(args.part, slugs), f)


if __name__ == "__main__":
    main()
