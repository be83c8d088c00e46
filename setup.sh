#!/usr/bin/env bash
# Set up rsi in ./.venv: pinned CPU PyTorch, then the package and its test dependencies.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
# The CPU build of torch is pinned first so no dependency can pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[test]'
echo "rsi is set up in .venv (activate with: source .venv/bin/activate)"
