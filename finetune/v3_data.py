"""The extra training archives of the v3 run, next to the generator's train split (finetune/embedded_v3.sh):

    python finetune/v3_data.py --adversarial-source adv-src.parquet -o DATA_DIR

writes into DATA_DIR
  radlabels-train.parquet   our radlabels train part (360 real-phrasing chest X-ray reports, abnormality gold only)
  radlabels-dev.parquet     our radlabels dev part (120), for the dev-loss set
  adversarial.parquet       the source reports (a train-split sample) with one prompt injection each
                            (radbatch/finetune/inject.py), gold unchanged; patient ids prefixed `adv-` and
                            temporal gold dropped, so no adversarial copy becomes another report's prior
Both radlabels files carry the column options' columns (patient_id, study_date, modality, question, hypothesis) as
nulls, so that one `radbatch finetune` command with annotate's column options reads all archives.
Only radlabels reports synth_0401..synth_1000 are in any part (radbatch/evaluation/radlabels.py OURS); this
script refuses to write any other. Deterministic: same inputs, same bytes.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from radbatch.archive.private_files import open_private, private_dirs
from radbatch.evaluation import radlabels
from radbatch.finetune.inject import inject
from radbatch.heads.recipes import load_recipes

NULL_COLUMNS = ("patient_id", "study_date", "modality", "question", "hypothesis")
SEED = 20261207


def radlabels_part(part: str) -> pa.Table:
    slugs = dict(load_recipes().tasks["abnormality_detection"].answer.labels)
    table = radlabels.archive(part, slugs)
    ours = {radlabels.report_id(n) for n in radlabels.OURS}
    if not set(table.column("report_id").to_pylist()) <= ours:
        raise SystemExit("refusing: a radlabels report outside synth_0401..synth_1000 is in the part")
    for name in NULL_COLUMNS:
        table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
    return table


def adversarial(source: pa.Table) -> pa.Table:
    rng = random.Random(SEED)
    texts = [inject(t, rng) if t else t for t in source.column("report_text").to_pylist()]
    out = source.set_column(source.schema.get_field_index("report_text"), "report_text", pa.array(texts, pa.string()))
    ids = pc.binary_join_element_wise("adv-", pc.cast(out.column("report_id"), pa.string()), "")
    out = out.set_column(out.schema.get_field_index("report_id"), "report_id", ids)
    if "patient_id" in out.column_names:
        pats = pc.binary_join_element_wise("adv-", pc.cast(out.column("patient_id"), pa.string()), "")
        out = out.set_column(out.schema.get_field_index("patient_id"), "patient_id", pats)
    for i, name in enumerate(out.column_names):
        if name.startswith("gold__temporal_comparison__"):
            out = out.set_column(i, name, pa.nulls(out.num_rows, out.schema.field(name).type))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adversarial-source", required=True, help="a train-split archive from `radbatch sample`")
    ap.add_argument("-o", "--output-dir", required=True)
    args = ap.parse_args()
    out = Path(args.output_dir)
    private_dirs(out)
    for part in ("train", "dev"):
        write_private(radlabels_part(part), out / f"radlabels-{part}.parquet")
    write_private(adversarial(pq.read_table(args.adversarial_source)), out / "adversarial.parquet")


def write_private(table: pa.Table, path: Path) -> None:
    with open_private(path) as f:   # report text: owner-only
        pq.write_table(table, f)


if __name__ == "__main__":
    main()
