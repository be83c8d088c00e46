"""Shared fixtures. `sandbox`: a two-slot `rsi.sandbox.Sandbox` with short limits. Every test
session has its own empty model cache (`RSI_CACHE_DIR`, inherited by the `rsi` subprocesses), so
the first GGUF load converts and the later ones read the conversion. `browser`: headless
Chromium through Selenium (Debian's `chromium` and `chromium-driver`, which setup.sh installs as root).

Where the sandbox cannot start, its tests are skipped with the reason, except in CI
(`CI=true`), where setup.sh installs what it needs and a missing sandbox is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rsi.errors import SandboxUnavailable
from rsi.sandbox import Limits, Sandbox

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
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


@pytest.fixture(scope="session")
def browser():
    if not (shutil.which(CHROMIUM) and shutil.which(DRIVER)):
        if os.environ.get("CI"):
            raise AssertionError(f"{CHROMIUM} and {DRIVER} are missing: setup.sh installs Debian's chromium and "
                                 "chromium-driver when run as root")
        pytest.skip("Debian's chromium and chromium-driver are not installed (setup.sh installs them as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()
