#!/usr/bin/env bash
# The real-model figures of the README (issue 11, item 7), in one command, on this machine:
#   1. tune on gsm8k, writing a profile;
#   2. the speedup table: batch 1, transformers batch 16/32 with per_row and post stopping,
#      transformers_cb, vLLM, tuned; accuracy against gold and agreement with batch 1;
#   3. eval --profile auto on svamp, next to batch 1 on the same problems;
#   4. majority_vote k=5 against standard, through the same profile;
#   5. tune --budget 5m against the exhaustive grid, for runs of 50 and 1,000 problems
#      (infertune efficiency --budget; issue 12).
# Usage: bash scripts/measure_real_model.sh [OUT] (default docs/results/<date>-<hardware>-smollm2)
# Every step's command line and output land in OUT; nothing else is written.
set -euo pipefail
MODEL=${MODEL:-smollm2-135m-instruct}
COUNT=${COUNT:-16}            # tune problems (gsm8k)
SPEEDUP_COUNT=${SPEEDUP_COUNT:-32}  # speedup problems (gsm8k): two batches of 16, one of 32
EVAL_COUNT=${EVAL_COUNT:-200} # eval problems (svamp)
VOTE_COUNT=${VOTE_COUNT:-32}  # majority-vote problems (svamp)
TOKENS=${TOKENS:-128}        # tune and speedup
EVAL_TOKENS=${EVAL_TOKENS:-256}
CANARIES=${CANARIES:-4}      # the batch-1 reference: ~10-30 s each on this CPU
BUDGET=${BUDGET:-5m}
MAX_BATCH=${MAX_BATCH:-32}  # this CPU; a probe would say so
HW=$(python -c "from common.hardware import fingerprint, hardware_id; print(hardware_id(fingerprint()))")
OUT=${1:-docs/results/$(date +%F)-$HW-smollm2}
mkdir -p "$OUT"
PROFILES="$OUT/profiles"
export INFERTUNE_PROFILES_DIR="$PROFILES"  # eval finds the profile there
run() {  # run "name" command...: logs the command, its output and its wall time
  local name=$1; shift
  echo "\$ $*" > "$OUT/$name.log"
  local start=$SECONDS
  "$@" 2>&1 | tee -a "$OUT/$name.log"
  echo "wall_s=$((SECONDS - start))" | tee -a "$OUT/$name.log"
}
run 1-tune python -m commands.main tune --model "$MODEL" --dataset gsm8k --count "$COUNT" \
  --max-new-tokens "$TOKENS" --budget "$BUDGET" --for-count "$EVAL_COUNT" --canary-size "$CANARIES" \
  --max-batch-size "$MAX_BATCH" \
  --profiles-dir "$PROFILES" --storage "sqlite:///$OUT/study.db"
run 2-speedup python -m commands.main speedup --model "$MODEL" --dataset gsm8k --count "$SPEEDUP_COUNT" \
  --max-new-tokens "$TOKENS" --profiles-dir "$PROFILES" --results-dir "$OUT/speedup" \
  --configs baseline transformers-bs16 transformers-bs16-post transformers-bs32 \
  transformers-bs32-post transformers-cb32 vllm-seqs32 vllm-defaults tuned
if [ -z "${BATCH1_RUN:-}" ]; then  # a batch-1 svamp run measured before may be passed in
  run 3-eval-batch1 python -m evaluation.eval --model "$MODEL" --dataset svamp \
    --count "$EVAL_COUNT" --batch-size 1 --max-new-tokens "$EVAL_TOKENS" --round batch1 \
    --results-dir "$OUT/eval"
fi
run 3-eval-tuned python -m evaluation.eval --model "$MODEL" --dataset svamp --count "$EVAL_COUNT" \
  --profile auto --max-new-tokens "$EVAL_TOKENS" --round tuned \
  --results-dir "$OUT/eval"
run 4-vote-standard python -m evaluation.eval --model "$MODEL" --dataset svamp \
  --count "$VOTE_COUNT" --profile auto --max-new-tokens "$EVAL_TOKENS" \
  --round standard --results-dir "$OUT/vote"
run 4-vote-k5 python -m evaluation.eval --model "$MODEL" --dataset svamp --count "$VOTE_COUNT" \
  --agent majority_vote --num-runs 5 --profile auto \
  --max-new-tokens "$EVAL_TOKENS" --round majority-k5 --results-dir "$OUT/vote"
run 5-efficiency python -m commands.main efficiency --model "$MODEL" --dataset gsm8k \
  --backend transformers vllm --batch-sizes 8 32 --count 16 --canary-size "$CANARIES" \
  --max-new-tokens "$TOKENS" --budget 5m --for-count 50 1000 --storage-dir "$OUT/efficiency" \
  --json "$OUT/efficiency.json"
