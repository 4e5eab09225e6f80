#!/usr/bin/env bash
set -x
cd <worktree at the commit>
export PYTHONPATH=<worktree at the commit> INFERTUNE_DATA_DIR=/work/shared/data
echo "start $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
python -m commands tune --model smollm2-135m-instruct --dataset svamp --count 8 --max-new-tokens 256 \
  --budget 8m --mode majority_vote --num-runs 5 --for-count 32 --canary-size 4 --max-batch-size 32 \
  --profiles-dir /tmp/measV/profiles --storage sqlite:////tmp/measV/study.db
echo "tune done $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
INFERTUNE_PROFILES_DIR=/tmp/measV/profiles python -m evaluation.eval --model smollm2-135m-instruct --dataset svamp \
  --count 32 --agent majority_vote --num-runs 5 --profile auto --max-new-tokens 256 --round majority-k5-tuned \
  --results-dir /tmp/measV/results
echo "eval done $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
