"""Shared fixtures and how the suite spreads over the CPU's cores.

The suite runs on `pytest-xdist` workers, one per core (`-n auto` in pyproject.toml; `-n 0` runs it in
one process). Each worker, and every `rsi` process it starts, computes on its share of the cores
(`OMP_NUM_THREADS`): two 1-thread workers on 2 cores do 1.6 times the work of one 2-thread
process (a quick run: 78 s at 1 thread, 64 s at 2). Tests that share a module-scoped fixture (a
trained run) go to one worker, so the fixture is built once; tests that start Ray (`xdist_group("ray")`)
go to one worker too.

`sandbox`: a two-slot `rsi.sandbox.Sandbox` with short limits. Every test session has its own empty
model cache (`RSI_CACHE_DIR`, shared by its workers and inherited by the `rsi` subprocesses), so
the first GGUF load converts and the later ones read the conversion. `browser`: headless
Chromium through Selenium (Debian's `chromium` and `chromium-driver`, which setup.sh installs as root).

Where the sandbox cannot start, its tests are skipped with the reason, except in CI
(`CI=true`), where setup.sh installs what it needs and a missing sandbox is a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import settings

from rsi.errors import SandboxUnavailable
from rsi.sandbox import Limits, Sandbox

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# property tests check what holds, not how fast: hypothesis's 200 ms deadline per example fails on a loaded machine
settings.register_profile("rsi", deadline=None)
settings.load_profile("rsi")
TEST_LIMITS = Limits(wall_s=3.0, cpu_s=1, memory_mb=256, pids=32, tmpfs_mb=32, output_bytes=64 << 10)


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    cache = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "rsi-cache"
    cache.mkdir(exist_ok=True)  # written atomically (rsi.engine.modelcache): workers may share it
    os.environ["RSI_CACHE_DIR"] = str(cache)
    yield cache


def pytest_configure(config):
    """Each xdist worker computes on its share of the cores (before any test imports torch); more
    threads than cores in all, and OpenMP's waiting threads made a quick run 14 times slower."""
    if hasattr(config, "workerinput"):  # set here, not inherited: the controller's is its own
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // config.workerinput["workercount"]))


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items):
    """Tests sharing a module-scoped fixture run on one xdist worker (see the module docstring)."""
    for item in items:
        shared = sorted(name for name, defs in item._fixtureinfo.name2fixturedefs.items()
                        if defs[-1].scope == "module")
        if shared and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}:{shared[0]}"))


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
