"""The extra training archives of the v3 run, next to the generator's train split (finetune/embedded_v3.sh):

    python finetune/v3_data.py --adversarial-source adv-src.parquet -o DATA_DIR \
        [--solo-source solo-src.parquet --solo-dev-source dev300.parquet]   # the v4t warm start's extra parts

writes into DATA_DIR
  radlabels-train.parquet   our radlabels train part (360 real-phrasing chest X-ray reports, abnormality gold only)
  radlabels-dev.parquet     our radlabels dev part (120), for the dev-loss set
  adversarial.parquet       the source reports (a train-split sample) with one prompt injection each
                            (radbatch/finetune/inject.py), gold unchanged; patient ids prefixed `adv-` and
                            temporal gold dropped, so no adversarial copy becomes another report's prior
  temporal-solo.parquet     (--solo-source) each follow-up report of a train-split sample on its own: patient id
                            `solo-<report_id>`, so annotate finds no prior and the temporal head reads the
                            report's own comparison statements (the case v3 never saw: truncation on real
                            reports); temporal gold kept, every other head's gold dropped
  temporal-solo-dev.parquet (--solo-dev-source) the same from a dev-split archive, for the dev-loss set
  temporal-pairs.parquet    (--solo-source) the same sample whole, temporal gold only: its follow-ups' changes, and
                            "None" (an empty list) for every other report whose prior annotate finds (same patient
                            and modality) and whose text states no comparison; the generator leaves those
                            unlabelled, but the head runs on them, and a cue must be quoted from the report, so
                            the answer is None (v3 never saw it, and loops on some)
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
from radbatch.archive.sections import mentions_comparison, split_sections
from radbatch.evaluation import radlabels
from radbatch.evaluation.quality_archives import has_prior
from radbatch.finetune.inject import inject
from radbatch.heads.recipes import load_recipes

NULL_COLUMNS = ("patient_id", "study_date", "modality", "question", "hypothesis")
SEED = 20261207
CHANGES = "gold__temporal_comparison__changes"


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


def solo_followups(source: pa.Table) -> pa.Table:
    """Follow-ups (rows with temporal gold) as one-report patients; only the temporal gold kept."""
    out = source.filter(pc.invert(pc.is_null(source.column(CHANGES))))
    solo = pc.binary_join_element_wise("solo-", pc.cast(out.column("report_id"), pa.string()), "")
    return _only_temporal_gold(out.set_column(out.schema.get_field_index("patient_id"), "patient_id", solo))


def temporal_pairs(source: pa.Table) -> pa.Table:
    """The whole archive (priors included), temporal gold only: follow-ups' changes, [] for paired reports that
    state no comparison, null elsewhere."""
    texts = source.column("report_text").to_pylist()
    gold = source.column(CHANGES).to_pylist()
    for i, (paired, text) in enumerate(zip(has_prior(source), texts)):
        if gold[i] is None and paired and not mentions_comparison(text or "", split_sections(text or "")):
            gold[i] = []
    at = source.schema.get_field_index(CHANGES)
    return _only_temporal_gold(source.set_column(at, CHANGES, pa.array(gold, source.schema.field(CHANGES).type)))


def _only_temporal_gold(table: pa.Table) -> pa.Table:
    """Every other head's gold set to null, so these rows teach the temporal head only."""
    for i, name in enumerate(table.column_names):
        if name.startswith("gold__") and not name.startswith("gold__temporal_comparison__"):
            table = table.set_column(i, name, pa.nulls(table.num_rows, table.schema.field(name).type))
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adversarial-source", required=True, help="a train-split archive from `radbatch sample`")
    ap.add_argument("--solo-source", help="a train-split archive: its follow-ups become temporal-solo.parquet")
    ap.add_argument("--solo-dev-source", help="a dev-split archive: its follow-ups become temporal-solo-dev.parquet")
    ap.add_argument("-o", "--output-dir", required=True)
    args = ap.parse_args()
    out = Path(args.output_dir)
    private_dirs(out)
    for part in ("train", "dev"):
        write_private(radlabels_part(part), out / f"radlabels-{part}.parquet")
    write_private(adversarial(pq.read_table(args.adversarial_source)), out / "adversarial.parquet")
    for source, name in ((args.solo_source, "temporal-solo"), (args.solo_dev_source, "temporal-solo-dev")):
        if source:
            write_private(solo_followups(pq.read_table(source)), out / f"{name}.parquet")
    if args.solo_source:
        write_private(temporal_pairs(pq.read_table(args.solo_source)), out / "temporal-pairs.parquet")


def write_private(table: pa.Table, path: Path) -> None:
    with open_private(path) as f:   # report text: owner-only
        pq.write_table(table, f)


if __name__ == "__main__":
    main()
