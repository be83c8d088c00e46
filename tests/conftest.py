"""Shared fixtures. `sandbox`: a two-slot `rsi.sandbox.Sandbox` with short limits. Every test
session has its own empty model cache (`RSI_CACHE_DIR`, inherited by the `rsi` subprocesses), so
the first GGUF load converts and the later ones read the conversion.

Where the sandbox cannot start, its tests are skipped with the reason, except in CI
(`CI=true`), where setup.sh installs what it needs and a missing sandbox is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rsi.errors import SandboxUnavailable
from rsi.sandbox import Limits, Sandbox

TEST_LIMITS = Limits(wall_s=3.0, cpu_s=1, memory_mb=256, pids=32, tmpfs_mb=32, output_bytes=64 << 10)


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    os.environ["RSI_CACHE_DIR"] = str(tmp_path_factory.mktemp("rsi-cache"))
    yield Path(os.environ["RSI_CACHE_DIR"])


@pytest.fixture(scope="session")
def sandbox():
    try:
        sb = Sandbox(TEST_LIMITS, slots=2)
    except SandboxUnavailable as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(e))
    yield sb
    sb.close()
