#!/usr/bin/env bash
# The exact commands of the v3 training run (issue 12): data, measurements, the long background training from a
# pinned commit, resuming it in a later sitting, and exporting it. Run from the repository root after `make setup`.
# Nothing here changes models.toml or routing.toml: new adapters ship under new model names (the lead decides).
#
#   finetune/embedded_v3.sh data      # the training / dev archives (deterministic, seconds)
#   finetune/embedded_v3.sh measure   # token lengths per head and step time per candidate recipe
#   finetune/embedded_v3.sh launch    # pin the commit, start the trainer in the background (nice 19)
#   finetune/embedded_v3.sh resume    # the same command again: continues from the newest checkpoint
#   finetune/embedded_v3.sh status    # step, last dev loss, flatten check
#   finetune/embedded_v3.sh route-dev # each candidate on the whole dev archive, and the routing it implies
#   finetune/embedded_v3.sh all30     # the same recipe on all 30 layers for 150 steps: the layer-choice curve
#   STAGE=v4t finetune/embedded_v3.sh launch|resume|restore|status|export   # the warm start from v3 (below)
#
# Paths (override with the environment): the data and run folders live outside the worktrees so that they survive
# a checkout; the lead copies RUN/run.json, RUN/train_log.jsonl and the newest RUN/checkpoints/step-*.pt into
# finetune/runs/v3c/ at the end of a session. A later sitting restores them (see `restore` below) and resumes.
set -euo pipefail
export HF_HUB_OFFLINE=1
PY=${PY:-/work/main/.venv/bin/python}
DATA=${DATA:-/work/wt/train-runs/data-v3}
RUN=${RUN:-/work/wt/train-runs/v3c}
PIN=${PIN:-/work/wt/train-pin}
RECIPE=recipes/finetune/smollm2_135m_lora_v3.toml
PIDS=${RADBATCH_TRAINER_PIDS:-/tmp/radbatch-trainer.pids}
EVAL=${EVAL:-finetune/runs/v3-eval}   # in the repository: the dev annotations are committed, so routing resumes
COLS=(--question-column question --hypothesis-column hypothesis --patient-column patient_id
      --date-column study_date --modality-column modality)
TRAIN=("$DATA/train6000.parquet" "$DATA/radlabels-train.parquet" "$DATA/adversarial.parquet")
DEV=(--dev-archive "$DATA/dev300.parquet" --dev-archive "$DATA/radlabels-dev.parquet")
COMMITTED=finetune/runs/v3c   # where the lead commits the run's record and newest checkpoint
if [ "${STAGE:-v3}" = v4t ]; then
  # STAGE=v4t: the warm start from v3's step 3,000 (recipe smollm2_135m_lora_v4t.toml) with the same data plus each
  # follow-up report on its own (temporal-solo*.parquet: the temporal head without a prior) and temporal-only pairs
  # (temporal-pairs.parquet: "None" for paired reports that state no comparison); its own run folder and pin. Every command below (launch, resume, restore, status, export) then acts on it.
  RECIPE=recipes/finetune/smollm2_135m_lora_v4t.toml
  RUN=${RUN_V4T:-/work/wt/train-runs/v4t}
  PIN=${PIN_V4T:-/work/wt/train-pin-v4t}
  COMMITTED=finetune/runs/v4t
  TRAIN+=("$DATA/temporal-solo.parquet" "$DATA/temporal-pairs.parquet")
  DEV+=(--dev-archive "$DATA/temporal-solo-dev.parquet")
fi

case "${1:-}" in
data)
  # 6,000 train-split reports (never dev or test patients); 600 more train-split reports that become the
  # adversarial copies (one prompt injection each, radbatch/finetune/inject.py, gold unchanged); 300 dev-split
  # reports for the fixed dev-loss set (seed 33: the same set for every member); radlabels train (360) and dev (120)
  # parts of synth_0401..1000 (no other radlabels report is in either).
  mkdir -p "$DATA"
  PYTHONPATH=$PWD $PY -m radbatch sample -n 6000 --seed 31 --split train -o "$DATA/train6000.parquet"
  PYTHONPATH=$PWD $PY -m radbatch sample -n 600 --seed 32 --split train -o "$DATA/adv-src.parquet"
  PYTHONPATH=$PWD $PY -m radbatch sample -n 300 --seed 33 --split dev -o "$DATA/dev300.parquet"
  # v4t's extra parts, from 3,000 more train-split reports (seed 34): their follow-ups each on its own, and the
  # whole sample with temporal gold only (None for paired reports that state no comparison); dev300's follow-ups
  # on their own for the dev-loss set.
  PYTHONPATH=$PWD $PY -m radbatch sample -n 3000 --seed 34 --split train -o "$DATA/solo-src.parquet"
  PYTHONPATH=$PWD $PY finetune/v3_data.py --adversarial-source "$DATA/adv-src.parquet" \
      --solo-source "$DATA/solo-src.parquet" --solo-dev-source "$DATA/dev300.parquet" -o "$DATA"
  ;;
measure)
  # Token lengths per head (prompt + answer; temporal includes the prior), nothing skipped, with the share over
  # each candidate max_length; then the step time of each candidate at batch 4 (4 steps each, the first is
  # warm-up; the v3 recipe's step is two such batches, grad_accum 2) and of one dev-loss evaluation.
  flock /tmp/radbatch-cpu.lock env PYTHONPATH=$PWD $PY finetune/prepare_data.py "${TRAIN[@]}" --max-length 100000 \
      --dev-fraction 0 "${COLS[@]}"
  bench/exclusive env PYTHONPATH=$PWD $PY finetune/bench_steps.py "${TRAIN[@]}" --recipe $RECIPE --steps 4 \
      --threads 2 --variant top10-r8:layers=20-29,r=8,grad_accum=1 --variant top10-r16:layers=20-29,r=16,grad_accum=1 \
      --variant all30-r8:layers=0-29,r=8,grad_accum=1 --variant all30-r16:layers=0-29,r=16,grad_accum=1 \
      "${DEV[@]}" "${COLS[@]}"
  ;;
launch|resume)
  # Train from the pinned commit (git worktree at $PIN; run.json records the commit of every sitting). For a first
  # launch: commit, then `git worktree add $PIN <commit>`. The trainer's pid goes to $PIDS so that bench/exclusive
  # pauses it (SIGSTOP) during timings; remove it from there when the run ends. Rerunning resumes from the newest checkpoint (the same command; the run
  # folder refuses a different recipe, seed, data or base). `kill <pid>` (SIGTERM) checkpoints, then exits.
  [ -d "$PIN" ] || { echo "no pinned worktree at $PIN: git worktree add $PIN <commit>" >&2; exit 2; }
  mkdir -p "$RUN"
  cd "$PIN"
  nohup nice -n 19 env PYTHONPATH="$PIN" "$PY" -m radbatch finetune "${TRAIN[@]}" --base embedded \
      --recipe "$PIN/$RECIPE" "${DEV[@]}" -o "$RUN" --threads 2 -q "${COLS[@]}" >>"$RUN/trainer.out" 2>&1 &
  echo $! >"$PIDS"     # replaces a stale pid: bench/exclusive would SIGSTOP whatever process reuses it
  echo "trainer pid $! (written to $PIDS); log: $RUN/train_log.jsonl, output: $RUN/trainer.out"
  ;;
restore)
  # A later sitting on a fresh machine: the committed $COMMITTED/ (run.json, train_log.jsonl, the newest
  # checkpoints/step-*.pt) back into $RUN, `data` again (same bytes), the pin at run.json's "code"."commit", then
  # `resume`. The run folder's fingerprint (base, recipe, seed, data) must match, or finetune refuses to mix runs.
  mkdir -p "$RUN/checkpoints"
  cp "$COMMITTED/run.json" "$COMMITTED/train_log.jsonl" "$RUN/"
  cp "$COMMITTED"/checkpoints/step-*.pt "$RUN/checkpoints/"
  commit=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["code"]["commit"])' "$RUN/run.json")
  [ -d "$PIN" ] || git worktree add "$PIN" "$commit"
  echo "restored $RUN at step $(ls "$RUN/checkpoints" | tail -1); pin $PIN at $commit; now: $0 data && $0 resume"
  ;;
status)
  $PY - "$RUN" <<'EOF'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
lines = [json.loads(l) for l in (run / "train_log.jsonl").read_text().splitlines()]
steps = [l for l in lines if "loss" in l]
devs = [l for l in lines if "dev_loss" in l]
if steps:
    print(f"step {steps[-1]['step']}  elapsed {steps[-1]['elapsed_s'] / 3600:.2f} h  lr {steps[-1]['lr']:.2e}")
if devs:
    print(f"dev loss at step {devs[-1]['step']}: {devs[-1]['dev_loss']}  (step 0: {devs[0]['dev_loss']})")
meta = json.loads((run / "run.json").read_text())
print("flatten check:", json.dumps(meta.get("flatten_check", {}).get("drop")), meta.get("flatten_check", {}).get("flattened"))
EOF
  ;;
route-dev)
  # Each candidate alone on the whole dev archive (sample_data/quality_dev.parquet, 406 reports; issue 12 item 6),
  # annotated into $EVAL/route/dev-<name>.parquet (resumable: a finished file with the same run key is reused, so
  # adding a candidate later annotates only that one), scored with radbatch eval, and the routing those scores
  # imply written to $EVAL/routing-dev406.toml (recipes/routing.toml changes only when the lead ships it).
  # CANDIDATES overrides the list, e.g. CANDIDATES=smollm2-ft-v3,rules once v3 is exported.
  mkdir -p "$EVAL"
  flock /tmp/radbatch-cpu.lock env PYTHONPATH=$PWD $PY -m radbatch route sample_data/quality_dev.parquet \
      --models recipes/models.toml -o "$EVAL/routing-dev406.toml" \
      --candidates "${CANDIDATES:-smollm2-ft-a,smollm2-ft-b,rules}" --work-dir "$EVAL/route" \
      --workers 1 --threads 2 "${COLS[@]}"
  ;;
all30)
  # The layer-choice curve (issue 12 item 2): the v3 recipe with LoRA on all 30 layers, same data, seed and schedule,
  # for its first 150 steps (its dev loss at step 150 against the v3 run's at steps 150 and 300; all 30 layers cost
  # 2.2x a step). Runs in the foreground under the CPU lock, from the current commit (run.json records it).
  RUN30=${RUN30:-/work/wt/train-runs/v3-all30}
  flock /tmp/radbatch-cpu.lock nice -n 19 env PYTHONPATH=$PWD $PY -m radbatch finetune "${TRAIN[@]}" --base embedded \
      --recipe recipes/finetune/smollm2_135m_lora_v3_all30.toml "${DEV[@]}" -o "$RUN30" --threads 2 --stop-after 150 \
      -q "${COLS[@]}"
  ;;
export)
  # The finished run exports itself into $RUN/adapter.gguf; this exports the newest checkpoint of an unfinished
  # run (or `--checkpoint step-NNNNNNN.pt`) for a look at a learning-curve point: $0 export OUT.gguf [options]
  out=${2:?usage: $0 export OUT.gguf [--checkpoint step-NNNNNNN.pt]}; shift 2
  PYTHONPATH=$PIN $PY "$PIN/finetune/export.py" "$RUN" -o "$out" "$@"
  ;;
*)
  echo "usage: $0 data|measure|launch|resume|restore|status|route-dev|all30|export" >&2; exit 2 ;;
esac
