#!/usr/bin/env bash
# GPU check: probe, a budgeted tune, the speedup table and `eval --profile auto`, end to end
# on one GPU in one command of at most 10 minutes, model build included.
#
#   scripts/setup.sh && scripts/gpu_check.sh        # results in docs/results/<date>-<hardware-id>/
#   STEPS="probe tune" scripts/gpu_check.sh         # a subset
#   STEPS="agents bench gate" scripts/gpu_check.sh  # the agent-cost benchmark and the CI gate
#
# Sized from the H100 run (docs/results/2026-11-27-h100-80g-x1-45f61b): building the 1.5B
# model takes 35-60 s on a fresh machine and transformers' generate() at batch 1 about 43 ms
# per token, so a batch-1 pass of 16 x 64 tokens is ~45 s. The default steps' limits add up
# to 590 s (build 75 + probe 75 + tune 150 + speedup 200 + eval 90), so the script ends
# inside 10 minutes even when every step runs to its limit, and two runs fit a 15-minute
# lease with room for start-up. The tune has a wall-clock budget (TUNE_BUDGET) inside its
# step's limit, and its batch-1 parity reference runs on 8 canaries only.
#
# Everything runs on synthetic:qwen2.5-1.5b (the real Qwen2.5-1.5B shape, random
# weights, built locally on first use) with output lengths replayed from the
# dataset's reference solutions, so no hub access is needed.  Each step has its
# own time limit; a failed step is recorded and the next one still runs, and
# the script exits 1 if any step failed.  Without a CUDA GPU it exits 0 with the
# reason, unless GPU_CHECK_ALLOW_CPU=1, which runs the same steps on CPU (the
# test suite does that with MODEL=synthetic:tiny and tiny sizes).
#
# Environment (defaults in brackets):
#   MODEL [synthetic:qwen2.5-1.5b]  DATASET [gsm8k if its data is found, else synthetic]
#   OUT_DIR [docs/results/<UTC date>-<hardware id>]   PYTHON [python]
#   COUNT [16] MAX_NEW_TOKENS [64]: probe, speedup and eval workload; TUNE_COUNT [16]
#     TUNE_MAX_NEW_TOKENS [48]: tune workload
#   N_TRIALS [4] TUNE_BUDGET [2m] TUNE_BACKENDS [transformers]: the tune (its largest batch
#     is the probe's confirmed one when the probe ran, else 64)
#   SPEEDUP_CONFIGS [baseline transformers-bs16 transformers-bs32 vllm-seqs64 tuned]: one vLLM
#     row only, as each vLLM start (graph capture) costs about a minute
#   AGENT_MODELS [synthetic:small $MODEL]: models of the agent-cost benchmark (majority_vote k=5
#     vs one standard pass, tests/benchmarks/test_agent_speed.py), one step each
#   AGENT_SELECT: pytest -k expression for it (default: every backend installed)
#   BENCH_SELECT: pytest -k expression for the benchmark suite (default: every gpu case)
#   BASELINE [benchmarks/baseline-gpu-<hardware id>.json]: stored benchmark JSON to gate
#   MAX_DROP [10%]: largest throughput drop the gate accepts
#   TIME_SCALE [1]: multiplies every step's time limit (slow or shared machines)
#   STEPS [probe tune speedup eval]: which steps run, in this order; also agents, bench, gate
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false TRANSFORMERS_VERBOSITY=error
SELECTED=" ${STEPS:-probe tune speedup eval} "
for name in $SELECTED; do
    if [[ " agents probe tune speedup eval bench gate " != *" $name "* ]]; then
        echo "gpu_check: unknown step '$name' in STEPS; use some of: agents probe tune speedup eval bench gate" >&2
        exit 2
    fi
done

has_cuda=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
if [ "$has_cuda" != 1 ]; then
    if [ "${GPU_CHECK_ALLOW_CPU:-0}" != 1 ]; then
        echo "gpu_check: skipped: no CUDA GPU visible to torch (set GPU_CHECK_ALLOW_CPU=1 to run the steps on CPU)"
        exit 0
    fi
    # vLLM on CPU in one process is ~20x slower with more OpenMP threads than cores.
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} VLLM_ENABLE_V1_MULTIPROCESSING=0
    echo "gpu_check: no CUDA GPU; running on CPU because GPU_CHECK_ALLOW_CPU=1"
fi

MODEL=${MODEL:-synthetic:qwen2.5-1.5b}
if [ -z "${DATASET:-}" ]; then
    DATASET=$("$PY" -c "from evaluation.datasets import load_problems as f; f('gsm8k', count=1); print('gsm8k')" 2>/dev/null || echo synthetic)
fi
COUNT=${COUNT:-16}
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-64}
TUNE_COUNT=${TUNE_COUNT:-16}
TUNE_MAX_NEW_TOKENS=${TUNE_MAX_NEW_TOKENS:-48}
N_TRIALS=${N_TRIALS:-4}
SPEEDUP_CONFIGS=${SPEEDUP_CONFIGS:-baseline transformers-bs16 transformers-bs32 vllm-seqs64 tuned}
MAX_DROP=${MAX_DROP:-10%}
HWID=$("$PY" -c "from common.hardware import fingerprint, hardware_id; print(hardware_id(fingerprint()))")
OUT=${OUT_DIR:-docs/results/$(date -u +%Y-%m-%d)-$HWID}
BASELINE=${BASELINE:-benchmarks/baseline-gpu-$HWID.json}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PROFILES="$OUT/profiles"
TSV="$OUT/steps.tsv"
printf 'step\tstatus\tseconds\n' >"$TSV"
failed=0

# step NAME LIMIT_S CMD...: run CMD under a time limit, its stdout to $OUT/NAME.log and its
# stderr to $OUT/NAME.stderr.log, and record the outcome in $TSV; a step not in STEPS
# (NAME up to its first '-') is left out.
step() {
    local name=$1 limit=$(($2 * ${TIME_SCALE:-1})) start status
    shift 2
    if [ "$name" != build ] && [[ "$SELECTED" != *" ${name%%-*} "* ]]; then
        return 0
    fi
    echo "== $name (limit ${limit}s): $*"
    start=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>"$OUT/$name.stderr.log"
    status=$?
    printf '%s\t%s\t%s\n' "$name" "$status" "$(($(date +%s) - start))" >>"$TSV"
    if [ "$status" -ne 0 ]; then
        failed=$((failed + 1))
        echo "   FAILED (exit $status; 124 = time limit), last lines of its output:"
        tail -n 5 "$OUT/$name.log" "$OUT/$name.stderr.log" | sed 's/^/   | /'
    fi
}

{
    echo "model: $MODEL"; echo "dataset: $DATASET"; echo "hardware id: $HWID"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo "load before: $(uptime)"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
} >"$OUT/machine.txt" 2>&1

step build 75 "$PY" -c "from engines.synthetic import resolve_model; print(resolve_model('$MODEL'))"
for agent_model in ${AGENT_MODELS:-synthetic:small $MODEL}; do
    agent_args=(-k "${AGENT_SELECT:-}")
    [ -z "${AGENT_SELECT:-}" ] && agent_args=()
    name=agents-$(basename "${agent_model#synthetic:}")
    step "$name" 150 env INFERTUNE_AGENT_BENCH_MODEL="$agent_model" "$PY" -m pytest \
        tests/benchmarks/test_agent_speed.py -q -s -p no:cacheprovider "${agent_args[@]}" \
        --benchmark-enable --benchmark-json "$OUT/bench-$name.json"
done
step probe 75 "$PY" -m commands probe --model "$MODEL" --dataset "$DATASET" \
    --num-problems "$COUNT" --max-new-tokens "$MAX_NEW_TOKENS" --max-batch-size 64 --json
[ -f "$OUT/probe.log" ] && mv "$OUT/probe.log" "$OUT/probe.json"
# The tune searches up to the batch the probe confirmed (what fits this GPU), else 64.
MAX_BATCH=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['confirmed_batch'])" \
    "$OUT/probe.json" 2>/dev/null || echo 64)
# shellcheck disable=SC2086 # TUNE_BACKENDS is a list of names
step tune 150 "$PY" -m commands tune --model "$MODEL" --dataset "$DATASET" \
    --backend ${TUNE_BACKENDS:-transformers} --n-trials "$N_TRIALS" \
    --budget "${TUNE_BUDGET:-2m}" --count "$TUNE_COUNT" --for-count "$COUNT" \
    --canary-size 8 --max-new-tokens "$TUNE_MAX_NEW_TOKENS" --max-batch-size "$MAX_BATCH" \
    --seed 0 --profiles-dir "$PROFILES"
# shellcheck disable=SC2086 # SPEEDUP_CONFIGS is a list of names
step speedup 200 "$PY" -m commands speedup --model "$MODEL" --dataset "$DATASET" \
    --count "$COUNT" --max-new-tokens "$MAX_NEW_TOKENS" --out "$OUT" --profiles-dir "$PROFILES" \
    --time-limit 90 --configs $SPEEDUP_CONFIGS
# The run the tune was for: the evaluation with this machine's profile, as a user runs it.
step eval 90 env INFERTUNE_PROFILES_DIR="$PROFILES" "$PY" -m evaluation.eval --model "$MODEL" \
    --dataset "$DATASET" --count "$COUNT" --max-new-tokens "$MAX_NEW_TOKENS" --profile auto \
    --round gpu-check --results-dir "$OUT/eval"
# On CPU the gpu-marked cases skip; their CPU twins run the same code instead.
if [ "$has_cuda" = 1 ]; then select_args=(-m gpu); else select_args=(-m "not gpu"); fi
[ -n "${BENCH_SELECT:-}" ] && select_args+=(-k "$BENCH_SELECT")
step bench 240 "$PY" -m pytest tests/benchmarks/test_gpu_throughput.py -q -p no:cacheprovider \
    "${select_args[@]}" --benchmark-enable --benchmark-json "$OUT/bench-gpu.json"
if [ -f "$BASELINE" ]; then
    step gate 30 "$PY" -m commands bench-gate --baseline "$BASELINE" \
        --current "$OUT/bench-gpu.json" --max-drop "$MAX_DROP"
else
    echo "== gate: no stored baseline $BASELINE; to start one: cp $OUT/bench-gpu.json $BASELINE"
fi

echo "load after: $(uptime)" >>"$OUT/machine.txt"
column -t "$TSV" 2>/dev/null || cat "$TSV"
echo "gpu_check: results in $OUT ($failed step(s) failed)"
[ "$failed" -eq 0 ]
