#!/usr/bin/env bash
# The exact commands behind adapters/smollm2-radbatch-v1.gguf and docs/finetune-results.md.
# Run from the repository root after `make setup`. Long: on a shared 2-core box the training took ~50 min and
# each annotate of the 24 test reports 30-60 min. Steps are idempotent: reruns resume or skip.
set -euo pipefail
export HF_HUB_OFFLINE=1
BIN=.venv/bin
DATA=${DATA:-/tmp/ft-data}
RUN=${RUN:-$HOME/ft-runs/smollm2-v1}
EVAL=${EVAL:-$HOME/ft-eval}
COLS=(--question-column question --hypothesis-column hypothesis --patient-column patient_id
      --date-column study_date --modality-column modality)
mkdir -p "$DATA" "$EVAL"

# 1. Data: 2,000 synthetic train-split reports; the first 24 reports of the test split (other patients).
$BIN/radbatch sample -n 2000 --seed 11 --split train -o "$DATA/train.parquet"
$BIN/radbatch sample -n 120 --seed 11 --split test -o "$DATA/test120.parquet"
$BIN/python -c "import pyarrow.parquet as pq; pq.write_table(pq.read_table('$DATA/test120.parquet').slice(0, 24), '$DATA/test24.parquet')"

# 2. What the archive teaches (counts and token lengths, no training).
$BIN/python finetune/prepare_data.py "$DATA/train.parquet" --max-length 384 --seed 11 "${COLS[@]}"

# 3. Train (resumable: rerun the same command after an interruption), export, verify; copy the adapter.
$BIN/radbatch finetune "$DATA/train.parquet" --base embedded --recipe recipes/finetune/smollm2_135m_lora.toml \
    -o "$RUN" --threads 2 "${COLS[@]}"
cp "$RUN/adapter.gguf" adapters/smollm2-radbatch-v1.gguf

# 4. Zero-shot, fine-tuned and few-shot annotations of the test reports (gold columns are not kept: they
#    would clash with the output columns; eval reads them from the test file).
$BIN/radbatch annotate "$DATA/test24.parquet" -o "$EVAL/zeroshot.parquet" --keep-columns report_id "${COLS[@]}" \
    --workers 1 --threads 2
$BIN/radbatch annotate "$DATA/test24.parquet" -o "$EVAL/finetuned.parquet" --keep-columns report_id "${COLS[@]}" \
    --workers 1 --threads 2 --adapter adapters/smollm2-radbatch-v1.gguf
$BIN/python finetune/fewshot.py "$DATA/test24.parquet" --examples "$DATA/train.parquet" --shots 2 \
    --tasks rads_assignment,n_staging,m_staging,radiology_nli,radiology_qa -o "$EVAL/fewshot.parquet" "${COLS[@]}"

# 5. Scores: each run alone, and fine-tuned minus zero-shot with paired bootstrap intervals.
$BIN/radbatch eval "$EVAL/zeroshot.parquet" "$EVAL/finetuned.parquet" --gold "$DATA/test24.parquet" \
    --json "$EVAL/zeroshot-vs-finetuned.json"
$BIN/radbatch eval "$EVAL/zeroshot.parquet" "$EVAL/fewshot.parquet" --gold "$DATA/test24.parquet" \
    --tasks rads_assignment,n_staging,m_staging,radiology_nli,radiology_qa --json "$EVAL/zeroshot-vs-fewshot.json"
