"""The benchmark workload: sample reports -> the real plan -> work units of requests for every head.

Reports come from sample_data/reports.parquet when it exists (made by `radbatch sample`), else from the small
built-in FIXTURE below (12 synthetic reports written for these benchmarks: chest radiographs, oncology CT,
breast, thyroid, liver, prostate, lung screening; two patients have a prior study).
Requests are built by radbatch's own code (plan, priors, rows.prepare), so the engines see exactly the
prompts `radbatch annotate` sends.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data" / "reports.parquet"
OPTIONAL_COLUMNS = {"question": "question", "hypothesis": "hypothesis", "patient": "patient_id",
                    "date": "study_date", "modality": "modality"}

FIXTURE = [
    ("P1", "2021-03-02", "XR", "Is there a pleural effusion?",
     "EXAMINATION: Chest radiograph, PA and lateral.\nINDICATION: Cough and fever.\nCOMPARISON: None.\n"
     "FINDINGS: There is patchy consolidation in the right lower lobe. No pleural effusion or pneumothorax. "
     "The cardiomediastinal silhouette is normal. No acute osseous abnormality.\n"
     "IMPRESSION: Right lower lobe pneumonia."),
    ("P1", "2021-04-15", "XR", "Has the consolidation resolved?",
     "EXAMINATION: Chest radiograph, PA and lateral.\nINDICATION: Follow-up pneumonia.\n"
     "COMPARISON: Chest radiograph 2021-03-02.\nFINDINGS: Interval resolution of the right lower lobe "
     "consolidation. Lungs are clear. No pleural effusion. Heart size is normal.\n"
     "IMPRESSION: Resolved right lower lobe pneumonia. No acute cardiopulmonary process."),
    ("P2", "2022-01-10", "XR", "Is the heart enlarged?",
     "FINDINGS: Portable AP view. Endotracheal tube terminates 4 cm above the carina. Right internal jugular "
     "central venous catheter tip in the superior vena cava. The heart is enlarged. Bilateral perihilar "
     "opacities and small bilateral pleural effusions, consistent with pulmonary edema. Left basilar "
     "atelectasis.\nIMPRESSION: Cardiomegaly with pulmonary edema and small bilateral effusions. Support "
     "devices in standard position."),
    ("P3", "2020-06-01", "CT", "Is there distant metastatic disease?",
     "EXAMINATION: CT chest, abdomen and pelvis with contrast.\nINDICATION: Staging of newly diagnosed "
     "non-small cell lung cancer.\nFINDINGS: 3.2 cm spiculated mass in the right upper lobe. Enlarged right "
     "hilar lymph node measuring 1.6 cm in short axis and an enlarged subcarinal node measuring 1.4 cm. "
     "No contralateral mediastinal adenopathy. The liver, adrenal glands and bones show no suspicious lesion. "
     "No pleural effusion.\nIMPRESSION: Right upper lobe mass with ipsilateral hilar and subcarinal "
     "lymphadenopathy. No distant metastatic disease."),
    ("P3", "2020-09-03", "CT", "Has the lung mass grown?",
     "EXAMINATION: CT chest, abdomen and pelvis with contrast.\nCOMPARISON: CT 2020-06-01.\nFINDINGS: The "
     "right upper lobe mass has increased to 4.1 cm. New hypodense lesions in hepatic segments 6 and 7, the "
     "largest 2.2 cm, suspicious for metastases. Subcarinal node now 2.0 cm. New small right pleural "
     "effusion.\nIMPRESSION: Progression of disease with new hepatic metastases and enlarging nodal disease."),
    ("P4", "2023-02-20", "MG", "Which breast has the finding?",
     "EXAMINATION: Diagnostic mammogram and ultrasound of the left breast.\nFINDINGS: In the left breast at "
     "2 o'clock, 6 cm from the nipple, there is an irregular hypoechoic mass measuring 1.4 x 1.1 cm with "
     "angular margins and posterior shadowing. No axillary adenopathy.\nIMPRESSION: Suspicious left breast "
     "mass. BI-RADS 4C: high suspicion for malignancy. Ultrasound-guided biopsy recommended."),
    ("P5", "2022-08-08", "US", "How large is the nodule?",
     "EXAMINATION: Thyroid ultrasound.\nFINDINGS: Right lobe 5.1 cm, left lobe 4.6 cm. In the right lower "
     "pole there is a 1.8 cm solid hypoechoic nodule with irregular margins and punctate echogenic foci. "
     "Left lobe contains a 0.6 cm spongiform nodule.\nIMPRESSION: Right lower pole nodule, TI-RADS TR5; "
     "fine needle aspiration recommended. Left spongiform nodule TR1, no follow-up needed."),
    ("P6", "2021-11-30", "MR", "Is there a liver lesion?",
     "EXAMINATION: MRI liver with and without contrast.\nINDICATION: Cirrhosis, hepatitis C.\nFINDINGS: "
     "Nodular cirrhotic liver. A 2.4 cm observation in segment 8 shows nonrim arterial phase hyperenhancement "
     "and nonperipheral washout with an enhancing capsule. No tumor in vein. Small volume ascites. "
     "Splenomegaly.\nIMPRESSION: Segment 8 observation, LI-RADS LR-5, definitely hepatocellular carcinoma."),
    ("P7", "2024-05-14", "MR", "What is the PI-RADS score?",
     "EXAMINATION: Multiparametric MRI of the prostate.\nINDICATION: PSA 8.2.\nFINDINGS: Prostate volume "
     "52 mL. In the left peripheral zone at the mid gland there is a 1.3 cm focal lesion with marked "
     "diffusion restriction and early enhancement. No extraprostatic extension. Seminal vesicles are "
     "normal. No pelvic lymphadenopathy.\nIMPRESSION: PI-RADS 4 lesion in the left peripheral zone."),
    ("P8", "2023-07-07", "CT", "Is a follow-up scan needed?",
     "EXAMINATION: Low-dose CT chest for lung cancer screening.\nFINDINGS: 7 mm solid nodule in the left "
     "lower lobe. Mild centrilobular emphysema. Coronary artery calcifications. No pleural effusion.\n"
     "IMPRESSION: Lung-RADS 3, probably benign. Low-dose CT in 6 months."),
    ("P9", "2020-12-12", "XR", "Is there a pneumothorax?",
     "Single frontal view of the chest. Small right apical pneumothorax. Right chest tube in place. "
     "Mild right lower lobe atelectasis. Heart size normal. No fracture seen."),
    ("P10", "2022-03-03", "XR", "Are the lungs clear?",
     "FINDINGS: The lungs are clear. No focal consolidation, pleural effusion or pneumothorax. Normal "
     "cardiomediastinal silhouette.\nIMPRESSION: No acute cardiopulmonary abnormality."),
]


def fixture_table() -> pa.Table:
    cols = list(zip(*FIXTURE))
    return pa.table({"report_id": [f"R{i + 1:03d}" for i in range(len(FIXTURE))], "patient_id": list(cols[0]),
                     "study_date": list(cols[1]), "modality": list(cols[2]), "question": list(cols[3]),
                     "report_text": list(cols[4])})


def archive(n: int, workdir: Path | None = None) -> tuple[Path, str]:
    """(path to a Parquet file with the first n reports, where they came from)."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="radbatch-bench-"))
    if SAMPLE.exists():
        table, source = pq.read_table(SAMPLE).slice(0, n), str(SAMPLE.relative_to(REPO))
        table = table.select([c for c in table.column_names if "__" not in c])  # inputs only, no gold
    else:
        table, source = fixture_table(), "built-in fixture (bench/workload.py)"
        while table.num_rows < n:  # repeat the fixture with new ids if more reports are asked for
            extra = fixture_table()
            ids = [f"{r}-{table.num_rows}" for r in extra.column("report_id").to_pylist()]
            table = pa.concat_tables([table, extra.set_column(0, "report_id", pa.array(ids))])
        table = table.slice(0, n)
    path = workdir / "reports.parquet"
    pq.write_table(table, path)
    return path, source


def column_flags(path: Path) -> list[str]:
    """The annotate column options this archive supports (as the Makefile demo passes them)."""
    names = set(pq.ParquetFile(path).schema_arrow.names)
    return [x for opt, col in OPTIONAL_COLUMNS.items() if col in names for x in (f"--{opt}-column", col)]


def column_options(path: Path):
    from radbatch.archive.reading import ColumnOptions
    names = set(pq.ParquetFile(path).schema_arrow.names)
    return ColumnOptions(**{opt: col for opt, col in OPTIONAL_COLUMNS.items() if col in names})


# The benchmarks time one model: the embedded base model, as every number in docs/performance.md. (annotate's
# default routing spreads the heads over the two adapter members of the ensemble.)
MODEL = "smollm2"


def units(path: Path, profile: str | None = None, tasks: str | None = None, limit: int | None = None,
          model: str = MODEL, adapter: str | None = None):
    """The UnitWork list `radbatch annotate --model MODEL` would build for this archive (all heads).

    profile overrides the model's prompt profile (e.g. "radlite" for the notebook baseline)."""
    from radbatch.archive.reading import iter_units
    from radbatch.annotation.plan import AnnotateOptions, build_plan
    from radbatch.archive.priors import build_priors, priors_for
    from radbatch.annotation.rows import prepare

    work = Path(tempfile.mkdtemp(prefix="radbatch-units-"))
    opts = AnnotateOptions((str(path),), str(work / "out.parquet"), tasks=tasks, columns=column_options(path),
                           limit=limit, model=model, adapter=adapter)
    plan = build_plan(opts)
    head_models = plan.head_models
    if profile:
        head_models = {k: dataclasses.replace(m, profile=profile) for k, m in head_models.items()}
    cols = opts.columns
    wants_priors = any(h.recipe.id == "temporal_comparison" for h in plan.heads) and cols.patient and cols.date
    priors_path = build_priors(plan.files, cols, opts.encoding, work, limit) if wants_priors else None
    out = []
    for f in plan.files:
        priors = priors_for(priors_path, f.index)
        for start, table in iter_units(f, opts.encoding, cols.text_columns(), opts.unit_size):
            out.append(prepare(f.index, f.path, start, table, cols, plan.heads, head_models,
                               plan.recipes.profiles, priors))
    return plan, out


def worker_spec(plan, threads: int, engine: str, **extra):
    from radbatch.engines.spec import BatchSettings, WorkerSpec
    return WorkerSpec(plan.models, {h.recipe.id: h.grammar() for h in plan.heads}, threads, engine=engine,
                      batch=BatchSettings.from_extra(extra))
