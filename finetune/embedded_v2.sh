#!/usr/bin/env bash
# The exact commands behind the embedded ensemble (adapters/smollm2-radbatch-v2a.gguf, -v2b.gguf),
# recipes/routing.toml, docs/eval-example/ and docs/finetune-results.md.
# Run from the repository root after `make setup`. On the shared 2-core box every step below ran on its own
# under `flock /tmp/radbatch-cpu.lock` (one CPU-heavy job at a time); each training took one ~20-minute slot.
# Steps are idempotent: reruns resume (finetune, annotate) or redo cheap work.
set -euo pipefail
export HF_HUB_OFFLINE=1
BIN=.venv/bin
DATA=${DATA:-$HOME/ft-data}
RUNS=${RUNS:-$HOME/ft-runs}
EVAL=${EVAL:-$HOME/ft-eval2}
COLS=(--question-column question --hypothesis-column hypothesis --patient-column patient_id
      --date-column study_date --modality-column modality)
mkdir -p "$DATA" "$EVAL"

# 1. Data: 2,000 train-split reports to learn from, 40 dev-split reports to route on, 48 test-split reports
#    (other patients, phrasing families training never saw) to report on. Deterministic for the seed.
$BIN/radbatch sample -n 2000 --seed 11 --split train -o "$DATA/train.parquet"
$BIN/radbatch sample -n 40 --seed 11 --split dev -o "$DATA/dev40.parquet"
$BIN/radbatch sample -n 48 --seed 11 --split test -o "$DATA/test48.parquet"

# 2. The two members (rerun the same command to resume after an interruption); copy the adapters.
$BIN/radbatch finetune "$DATA/train.parquet" --base embedded --recipe recipes/finetune/smollm2_135m_lora.toml \
    -o "$RUNS/v2a" --threads 2 "${COLS[@]}"
$BIN/radbatch finetune "$DATA/train.parquet" --base embedded --recipe recipes/finetune/smollm2_135m_lora_cls.toml \
    -o "$RUNS/v2b" --threads 2 "${COLS[@]}"
cp "$RUNS/v2a/adapter.gguf" adapters/smollm2-radbatch-v2a.gguf
cp "$RUNS/v2b/adapter.gguf" adapters/smollm2-radbatch-v2b.gguf

# 3. Routing: the candidates annotate the dev reports; each head goes to the better one on dev.
#    (session 3: members a and b on dev40.parquet)
#    Session 4 (2026-12-07): the rules member joins; the first 40 rows of sample_data/quality_dev.parquet are
#    exactly dev40.parquet, and this is the command behind today's recipes/routing.toml (run under bench/exclusive):
$BIN/radbatch route sample_data/quality_dev.parquet --limit 40 --models recipes/models.toml \
    -o recipes/routing.toml --candidates smollm2-ft-a,smollm2-ft-b,rules --work-dir "$EVAL/route" \
    --workers 1 --threads 2 "${COLS[@]}"

# 4. Test annotations: zero-shot, each member, the routed ensemble (the default routing), few-shot.
#    Gold columns ride along in the annotated files (inline gold for eval).
for m in smollm2 smollm2-ft-a smollm2-ft-b; do
  $BIN/radbatch annotate "$DATA/test48.parquet" -o "$EVAL/test-$m.parquet" --model "$m" \
      --workers 1 --threads 2 -q "${COLS[@]}"
done
$BIN/radbatch annotate "$DATA/test48.parquet" -o "$EVAL/test-ensemble.parquet" --workers 1 --threads 2 -q "${COLS[@]}"
#    Few-shot: the fine-tuned ensemble (each head on its routed member) and the base model, two examples a head;
#    then RADS alone with seed 3, whose examples include a no-RADS report (seed 0 drew two RADS reports).
FEW=rads_assignment,n_staging,m_staging,radiology_nli,radiology_qa
$BIN/python finetune/fewshot.py "$DATA/test48.parquet" --examples "$DATA/train.parquet" --shots 2 --tasks $FEW \
    --model routed -o "$EVAL/test-fewshot.parquet" "${COLS[@]}"
$BIN/python finetune/fewshot.py "$DATA/test48.parquet" --examples "$DATA/train.parquet" --shots 2 --tasks $FEW \
    --model smollm2 -o "$EVAL/test-fewshot-base.parquet" "${COLS[@]}"
for m in routed smollm2; do
  $BIN/python finetune/fewshot.py "$DATA/test48.parquet" --examples "$DATA/train.parquet" --shots 2 --seed 3 \
      --tasks rads_assignment --model $m -o "$EVAL/test-fewshot-$m-seed3.parquet" "${COLS[@]}"
done

# 5. Scores: each run alone; zero-shot vs the ensemble with paired bootstrap; few-shot vs zero-shot;
#    the HTML example report of the ensemble.
for m in smollm2 smollm2-ft-a smollm2-ft-b ensemble; do
  $BIN/radbatch eval "$EVAL/test-$m.parquet" --json "$EVAL/test-$m.json" > "$EVAL/test-$m.txt"
done
$BIN/radbatch eval "$EVAL/test-smollm2.parquet" "$EVAL/test-ensemble.parquet" > "$EVAL/zeroshot-vs-ensemble.txt"
$BIN/radbatch eval "$EVAL/test-ensemble.parquet" "$EVAL/test-fewshot.parquet" --gold "$DATA/test48.parquet" \
    --id-column report_id --tasks $FEW > "$EVAL/ensemble-vs-fewshot.txt"
$BIN/radbatch eval "$EVAL/test-smollm2.parquet" "$EVAL/test-fewshot-base.parquet" --gold "$DATA/test48.parquet" \
    --id-column report_id --tasks $FEW > "$EVAL/zeroshot-vs-fewshot-base.txt"
for m in routed smollm2; do
  $BIN/radbatch eval "$EVAL/test-fewshot-$m-seed3.parquet" --gold "$DATA/test48.parquet" --id-column report_id \
      --tasks rads_assignment > "$EVAL/test-fewshot-$m-seed3.txt"
done
$BIN/python finetune/results_table.py zero-shot="$EVAL/test-smollm2.json" member-a="$EVAL/test-smollm2-ft-a.json" \
    member-b="$EVAL/test-smollm2-ft-b.json" ensemble="$EVAL/test-ensemble.json"
(cd "$EVAL" && "$OLDPWD/$BIN/radbatch" eval test-ensemble.parquet --report "$OLDPWD/docs/eval-example")
