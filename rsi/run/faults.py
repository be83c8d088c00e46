"""Fault injection: SIGKILL a real run inside chosen stages, resume it each time, and check that it
ends exactly as an uninterrupted run of the same config did (`rsi.views.fingerprint`).

A chain is one run driven to its end through several sessions: `rsi run`, then `rsi resume` after
every kill. Each session is killed once, in its target stage, in one of three ways:
- `time`: the harness polls the ledger until the stage before the target has committed (for
  `base`, until the run is created), waits a random 5-70 % of the target's duration in the
  reference run (a session may run its stage faster than the reference did: a later fraction
  missed `base` one time in a few), then kills the whole process group with SIGKILL (stages much
  shorter than the polling interval are usually past by then: the kill lands in the next stage);
- `commit`: the session is started with `RSI_KILL_AT=<cycle>/<stage>/commit` and SIGKILLs itself
  inside the target's ledger transaction, after every row is written and before COMMIT;
- `progress`: the session is started with `RSI_KILL_AT=<cycle>/<stage>/progress-<P>`, P a random
  5-70, and SIGKILLs itself when a progress bar of the target reaches P % of its work
  (`rsi.crashpoints.crash_at_progress`): always inside the target, whatever the machine's load
  (the test suite's mode; `time` explores moments no bar marks, for `benchmarks/fault_injection.py`).
A chain's targets are every other stage of the run, so each session has committed at least one
stage before it is killed in the next.

    from rsi.run.faults import reference_stages, kill_chain
    stages = reference_stages(reference_run)              # [(cycle, stage, wall_s), ...]
    kills = kill_chain(["quick"], run_dir, stages, targets=stages[0::2], rng=random.Random(0))
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rsi.crashpoints import KILL_ENV
from rsi.run.rundir import ledger_path

RSI = [sys.executable, "-m", "rsi.cli"]
POLL_S = 0.05


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: the stage in progress when it landed, and the seconds since its predecessor committed."""

    cycle: int
    stage: str
    after_s: float
    stages_done: int  # committed stages when the kill landed


def reference_stages(run_dir: Path) -> list[tuple[int, str, float]]:
    """(cycle, stage, wall seconds) of a finished run, in the order they ran."""
    return [(c, s, w) for c, s, w in _query(run_dir, "SELECT cycle, stage, wall_s FROM stages ORDER BY rowid")]


def _query(run_dir: Path, sql: str, timeout_s: float = 5) -> list[tuple]:
    con = sqlite3.connect(f"file:{ledger_path(run_dir)}?mode=ro", uri=True, timeout=timeout_s)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _committed(run_dir: Path) -> list[tuple[int, str]] | None:
    """Stages committed so far, or None while the run has no ledger with a run row yet."""
    if not ledger_path(run_dir).exists():
        return None
    try:
        # a short busy timeout: while the run writes, poll again rather than wait
        if not _query(run_dir, "SELECT 1 FROM run", POLL_S):
            return None
        return [(c, s) for c, s in _query(run_dir, "SELECT cycle, stage FROM stages ORDER BY rowid", POLL_S)]
    except sqlite3.Error:
        return None


def kill_chain(args: list[str], run_dir: Path, stages: list[tuple[int, str, float]],
               targets: list[tuple[int, str, float]], rng: random.Random, how: str | list[str] = "time",
               timeout_s: float = 600) -> list[Kill]:
    """Run `rsi run *args --run-dir run_dir`, killing one session in each target stage (in run
    order; `how`: "time", "commit" or "progress", see the module, or one of them per target) and
    resuming, then let the last session finish. Returns the kills, each named by the stage that was in
    progress when it landed."""
    order = [(c, s) for c, s, _ in stages]
    kills: list[Kill] = []
    cmd = [*RSI, "run", *args, "--run-dir", str(run_dir)]
    hows = [how] * len(targets) if isinstance(how, str) else how
    for (cycle, stage, wall_s), how in zip(targets, hows, strict=True):
        i = order.index((cycle, stage))
        with tempfile.TemporaryFile("w+") as err:  # the session's stderr, quoted if it fails
            if how in ("commit", "progress"):
                point = f"{cycle}/{stage}/" + ("commit" if how == "commit" else f"progress-{rng.randint(5, 70)}")
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=os.environ | {KILL_ENV: point})
                proc.wait(timeout=timeout_s)
                if proc.returncode != -signal.SIGKILL:
                    _check_exit(proc, err, run_dir)
                    raise RuntimeError(f"{run_dir}: the session ended without reaching {point}")
                kills.append(Kill(cycle, stage, 0.0, len(_committed(run_dir) or [])))
                cmd = [*RSI, "resume", str(run_dir)]
                continue
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
            began = _wait_for(run_dir, order[i - 1] if i else None, proc, timeout_s)
            if began is not None:
                time.sleep(max(0.0, began + rng.uniform(0.05, 0.7) * wall_s - time.monotonic()))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                done = _committed(run_dir) or []
                at = next(((c, s) for c, s in order if (c, s) not in done), (order[-1][0], "after the last stage"))
                kills.append(Kill(at[0], at[1], round(time.monotonic() - began, 3) if began else 0.0, len(done)))
            else:
                _check_exit(proc, err, run_dir)
            cmd = [*RSI, "resume", str(run_dir)]
    with tempfile.TemporaryFile("w+") as err:
        final = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        final.wait(timeout=timeout_s)
        _check_exit(final, err, run_dir)
    return kills


def _check_exit(proc: subprocess.Popen, err, run_dir: Path) -> None:
    if proc.returncode != 0:
        err.seek(0)
        raise RuntimeError(f"a session of {run_dir} failed with status {proc.returncode}: {err.read()[-2000:]}")


def _wait_for(run_dir: Path, before: tuple[int, str] | None, proc: subprocess.Popen, timeout_s: float) -> float | None:
    """Poll until `before` is committed (None: until the run exists); the time it was seen, or None
    if the process ended first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = _committed(run_dir)
        if done is not None and (before is None or before in done):
            return time.monotonic()
        if proc.poll() is not None:
            return None
        time.sleep(POLL_S)
    raise TimeoutError(f"{run_dir}: stage {before} did not commit within {timeout_s:.0f} s")
