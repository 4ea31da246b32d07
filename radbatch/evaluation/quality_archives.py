"""The fixed test and dev archives that quality is measured on (issue 12): what they are and how they are made.

Each archive starts with `radbatch sample -n ROWS --seed SEED --split SPLIT`: the generator's own class
proportions, never rebalanced (rebalancing would move the majority baselines). ROWS is the smallest count of at
least MIN_ROWS for which every head has at least MIN_GOLD gold rows, found by drawing further reports of the
same split and seed (a longer archive starts with the shorter one, so this is a plain top-up). The test archive
is exactly that draw. The dev archive tops up its rarest head, temporal comparison, differently (ArchiveSpec
.top_up): after the plain draw it adds only the next dev patients that have a follow-up pair, whole, until
that head has MIN_GOLD rows; the plain draw would need 631 reports, and every member is run over dev to route.
A temporal row counts only when its prior report is in the archive: the earlier report of the same patient
and modality, as `radbatch annotate --patient-column patient_id --date-column study_date --modality-column
modality` pairs them (radbatch/archive/priors.py). The generator writes a patient's reports consecutively and in date
order, so every follow-up's prior is in the archive too; `gold_counts` checks that rather than assume it.

    python finetune/quality_archives.py            # writes sample_data/quality_{test,dev}.parquet and the manifest
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from .task_specs import load_specs, task_ids

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "sample_data"
MANIFEST = SAMPLE_DATA / "quality_archives.json"
MIN_GOLD = 60
SEED = 11  # the seed of the earlier 48-report test set and 40-report dev set, which are these archives' first rows
PRIOR_COLUMNS = ("patient_id", "study_date", "modality")  # --patient-column, --date-column, --modality-column
ANNOTATE_COLUMNS = ("--question-column question --hypothesis-column hypothesis --patient-column patient_id "
                    "--date-column study_date --modality-column modality")


@dataclass(frozen=True)
class ArchiveSpec:
    name: str
    split: str
    min_rows: int
    seed: int = SEED
    top_up: str | None = None  # a rare head topped up with whole patients that have its gold, not a longer draw

    @property
    def file(self) -> str:
        return f"quality_{self.name}.parquet"


# test: a plain draw (465 reports: the temporal head reaches 60 last). dev: a plain draw of 346 reports
# (N and M staging reach 60 there), then temporal topped up with the next dev patients that have a follow-up
# pair, whole patients, instead of 631 plain reports: every member is run over the dev archive to route.
ARCHIVES = (ArchiveSpec("test", "test", 400), ArchiveSpec("dev", "dev", 200, top_up="temporal_comparison"))


def labelled(table: pa.Table, task: str) -> list[bool]:
    """eval's rule: a row is labelled for a head iff one of its gold columns is non-null."""
    columns = [f"gold__{task}__{f}" for f in load_specs()[task].fields if f"gold__{task}__{f}" in table.column_names]
    masks = [pc.is_valid(table.column(c)).to_pylist() for c in columns]
    return [any(values) for values in zip(*masks)] if masks else [False] * table.num_rows


def has_prior(table: pa.Table) -> list[bool]:
    """True where annotate finds a prior: an earlier row (by date, then row) of the same patient and modality."""
    patient, day, modality = (table.column(c).to_pylist() for c in PRIOR_COLUMNS)
    order = sorted(range(table.num_rows), key=lambda i: (str(patient[i]), str(modality[i]), day[i], i))
    out = [False] * table.num_rows
    for before, i in zip(order, order[1:]):
        out[i] = (patient[i], modality[i]) == (patient[before], modality[before]) and patient[i] is not None
    return out


def gold_rows(table: pa.Table) -> dict[str, list[bool]]:
    """Per head, the rows that count as gold examples (temporal: only where the prior is present)."""
    out = {task: labelled(table, task) for task in task_ids()}
    prior = has_prior(table)
    out["temporal_comparison"] = [g and p for g, p in zip(out["temporal_comparison"], prior)]
    return out


def gold_counts(table: pa.Table) -> dict[str, int]:
    return {task: sum(mask) for task, mask in gold_rows(table).items()}


def draw(spec: ArchiveSpec, min_gold: int = MIN_GOLD, ceiling: int = 5000) -> tuple[pa.Table, int]:
    """The archive's rows, and the length of its plain draw (the rows `radbatch sample -n` writes).

    Plain draw: the smallest row count >= spec.min_rows at which every head (but spec.top_up) has min_gold
    gold rows. A prefix of an archive is the shorter archive, and a prefix never holds a follow-up without its
    prior, so the counts grow with the row count. Top-up: the patients after the plain draw, in the
    generator's order, whole, keeping only those with gold for spec.top_up, until that head has min_gold.
    """
    from radbatch.sample.archive import sample_table

    table = sample_table(ceiling, seed=spec.seed, split=spec.split)
    rows = gold_rows(table)
    plain = [t for t in rows if t != spec.top_up]
    running = dict.fromkeys(rows, 0)
    n = 0
    while n < spec.min_rows or min(running[t] for t in plain) < min_gold:
        if n == ceiling:
            raise ValueError(f"{spec.name}: {ceiling} reports of split {spec.split} give no {min_gold} gold rows per head")
        for task, mask in rows.items():
            running[task] += mask[n]
        n += 1
    if spec.top_up is None or running[spec.top_up] >= min_gold:
        return table.slice(0, n), n
    patient, mask, count = table.column("patient_id").to_pylist(), rows[spec.top_up], running[spec.top_up]
    picked: list[int] = []
    i = n
    while i < ceiling and patient[i] == patient[n - 1]:
        i += 1  # the rest of a patient the plain draw cut
    while count < min_gold:
        j = i
        while j < ceiling and patient[j] == patient[i]:
            j += 1
        if j >= ceiling:  # the last patient may be cut short; never use it
            raise ValueError(f"{spec.name}: {ceiling} reports are too few to top up {spec.top_up}")
        if any(mask[i:j]):
            picked += range(i, j)
            count += sum(mask[i:j])
        i = j
    return pa.concat_tables([table.slice(0, n), table.take(picked)]), n


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def command(spec: ArchiveSpec, plain_rows: int, out_dir: Path | str = "sample_data") -> str:
    """The `radbatch sample` command whose output is the archive, or (topped up) its first plain_rows rows."""
    return f"radbatch sample -n {plain_rows} --seed {spec.seed} --split {spec.split} -o {out_dir}/{spec.file}"


def write(table: pa.Table, path: Path) -> None:
    """With the writer and options of `radbatch sample` (a plain draw comes out byte for byte the same)."""
    from radbatch.sample.archive import _write_parquet
    from radbatch.sample.schema import schema

    path.parent.mkdir(parents=True, exist_ok=True)
    _write_parquet(iter([table.combine_chunks()]), path, schema(True))


def build(out_dir: Path = SAMPLE_DATA, manifest: Path | None = None) -> dict:
    """Write both archives to out_dir and return (and, with `manifest`, write) what was made."""
    made = {}
    for spec in ARCHIVES:
        table, plain = draw(spec)
        path = Path(out_dir) / spec.file
        write(table, path)
        made[spec.name] = {
            "file": spec.file, "split": spec.split, "seed": spec.seed, "rows": table.num_rows,
            "plain_rows": plain, "min_rows": spec.min_rows, "min_gold": MIN_GOLD, "top_up": spec.top_up,
            "command": command(spec, plain), "sha256": sha256(path), "gold_rows": gold_counts(table),
        }
    if manifest is not None:
        manifest.write_text(json.dumps(made, indent=2) + "\n", encoding="utf-8")
    return made


def load_manifest() -> dict:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))
