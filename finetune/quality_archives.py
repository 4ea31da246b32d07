"""Rebuild the fixed quality archives: sample_data/quality_test.parquet (>= 400 test-split reports) and
sample_data/quality_dev.parquet (>= 200 dev-split reports), topped up from the same split until every head has
60 gold rows, plus sample_data/quality_archives.json (rows, commands, sha256, gold rows per head).

    .venv/bin/python finetune/quality_archives.py            # rewrite the committed files
    .venv/bin/python finetune/quality_archives.py --check    # rebuild in a temporary folder, compare sha256

tests/test_quality_archives.py does what --check does. The rules: radbatch/evaluation/quality_archives.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from radbatch.evaluation import quality_archives as qa


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="rebuild elsewhere and compare with the committed files")
    ap.add_argument("--out-dir", type=Path, default=qa.SAMPLE_DATA)
    args = ap.parse_args()
    if args.check:
        committed = qa.load_manifest()
        with tempfile.TemporaryDirectory() as tmp:
            made = qa.build(Path(tmp))
        bad = [name for name, m in made.items()
               if m != committed.get(name) or qa.sha256(qa.SAMPLE_DATA / m["file"]) != m["sha256"]]
        print("differs: " + ", ".join(bad) if bad else "the committed archives are what the command writes")
        return 1 if bad else 0
    manifest = qa.MANIFEST if args.out_dir == qa.SAMPLE_DATA else args.out_dir / qa.MANIFEST.name
    made = qa.build(args.out_dir, manifest)
    for name, m in made.items():
        print(f"{name}: {m['rows']} reports ({m['command']}), sha256 {m['sha256'][:16]}...")
        print("  gold rows: " + ", ".join(f"{t} {n}" for t, n in m["gold_rows"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
