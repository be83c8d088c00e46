"""Stopping a run cleanly: budgets, a STOP file, SIGINT (Ctrl-C) or SIGTERM. Asked at every stage boundary.

A stage in progress is never cut short by these: the loop asks `Stopper.reason` before each
stage, and when there is a reason it records a `stop` event in the ledger and raises
`RunStopped`. Everything done so far is committed, so `rsi resume RUN` goes on from the next stage
(with a budget raised by `--set budget.cpu_hours=...` if a budget stopped it). Budgets count the
whole run, every session of it, from the ledger's stage costs.

`rsi run` and `rsi resume` catch the signals first thing (`catch_signals`), before the config is
read or torch imported, so a signal in the first seconds is a clean stop too. A second signal does
not wait: it raises `Interrupted` where the process is, the stage it was in rolls back as if
killed, and the CLI says so (exit status 130 or 143).

A STOP file is answered once and removed. One older than the run's last completed stage was left
from an earlier session (say, touched after the stage that ended the run was checked): `stale_stop`
removes it when a session starts, and the loop says so.

    touch runs/quick-20261122-101500/STOP     # stop after the current stage
    kill -TERM <pid of rsi run>               # the same; Ctrl-C too
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rsi.errors import RsiError

if TYPE_CHECKING:
    from rsi.config import BudgetConfig

STOP_FILE = "STOP"
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunStopped(RsiError):
    """The run stopped cleanly before its end (budget, STOP file or a signal); it can be resumed."""

    def __init__(self, run_dir: Path, cycle: int, stage: str, reason: str) -> None:
        self.run_dir, self.cycle, self.stage, self.reason = run_dir, cycle, stage, reason
        self.detail: dict = {}  # more for the ledger's stop event (e.g. the candidate awaiting review)
        hint = " with a larger budget (--set budget.<key>=...)" if reason.startswith("budget.") else ""
        super().__init__(f"run stopped before cycle {cycle} {stage}: {reason}. Everything before it is in the "
                         f"ledger; continue with `rsi resume {run_dir}`{hint}.")


class Interrupted(KeyboardInterrupt):
    """A second SIGINT or SIGTERM: the process stops where it is (the stage in progress rolls back)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class _Signals:
    """The process's SIGINT/SIGTERM handler: the first one is remembered, a second one interrupts."""

    def __init__(self) -> None:
        self.received: str | None = None
        self.forced: int | None = None  # the signal that interrupted at once; kept after `restore`
        self._previous: dict[int, object] = {}

    def install(self) -> bool:
        """Catch the signals (main thread only, where Python runs handlers); False if not possible."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for sig in SIGNALS:
            if sig not in self._previous:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return True

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
        self.received = None

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.received is not None:
            self.forced = signum
            raise Interrupted(signum)
        self.received = signal.Signals(signum).name
        os.write(2, f"\n{self.received}: stopping before the next stage (send it again to stop now, losing the "
                    "stage in progress)\n".encode())


_signals = _Signals()


def forced_signal() -> int | None:
    """The signal that last interrupted the process at once (then forgotten), or None. An
    interrupt that lands inside an import can leave that module half made, so what the program
    raises next may be an ImportError rather than `Interrupted`: the CLI asks this to tell."""
    signum, _signals.forced = _signals.forced, None
    return signum


@contextmanager
def catch_signals() -> Iterator[None]:
    """Catch SIGINT and SIGTERM for the block (the CLI enters it first); `Stopper` answers for them.
    Afterwards the previous handlers are back and nothing received is remembered."""
    owner = not _signals._previous and _signals.install()
    try:
        yield
    finally:
        if owner:
            _signals.restore()


class Stopper:
    """Answers why to stop, if at all; as a context manager it catches SIGINT and SIGTERM while the
    loop runs (if `catch_signals` has not already) and lets them go afterwards."""

    def __init__(self, run_dir: Path) -> None:
        self.stop_file = Path(run_dir) / STOP_FILE
        self._owner = False

    def __enter__(self) -> Stopper:
        self._owner = not _signals._previous and _signals.install()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._owner:
            _signals.restore()
            self._owner = False

    def reason(self, budget: BudgetConfig, totals: dict[str, float]) -> str | None:
        """Why the run should stop before its next stage; None to go on. A STOP file it answers for
        is removed, so `rsi resume` runs again."""
        if _signals.received:
            return f"{_signals.received} received"
        if self.stop_file.exists():
            self.stop_file.unlink(missing_ok=True)
            return f"{self.stop_file} was found (and removed)"
        return budget_spent(budget, totals)


def stale_stop(run_dir: Path, last_stage_at: str | None) -> str | None:
    """Remove a STOP file older than the run's last completed stage (finished at `last_stage_at`,
    ISO time): it was left from an earlier session. Returns a note saying so, or None."""
    stop = Path(run_dir) / STOP_FILE
    if last_stage_at is None or not stop.exists():
        return None
    made = datetime.fromtimestamp(stop.stat().st_mtime).astimezone()
    last = datetime.fromisoformat(last_stage_at)
    if made >= last:
        return None
    stop.unlink(missing_ok=True)
    return (f"removed {stop}: it dates from {made:%Y-%m-%d %H:%M:%S}, before the run's last completed stage "
            f"({last.astimezone():%Y-%m-%d %H:%M:%S}), so it was left from an earlier session")


def budget_spent(budget: BudgetConfig, totals: dict[str, float]) -> str | None:
    """Which budget the run's `totals` (`Ledger.totals()`) have used up, or None."""
    for key, spent, unit in (("wall_hours", totals["wall_s"] / 3600, "wall hours in stages"),
                             ("cpu_hours", totals["cpu_s"] / 3600, "CPU hours"),
                             ("generated_tokens", totals["generated_tokens"], "tokens generated")):
        limit = getattr(budget, key)
        if limit is not None and spent >= limit:
            return f"budget.{key} is spent ({spent:,.4g} {unit} of {limit:,.4g})"
    return None


def request_stop(run_dir: Path, by: str) -> Path:
    """Ask the run in `run_dir` to stop before its next stage: the STOP file, saying who asked (the
    console's Stop; `touch RUN/STOP` does the same)."""
    stop = Path(run_dir) / STOP_FILE
    stop.write_text(f"asked by {by} at {datetime.now().astimezone():%Y-%m-%d %H:%M:%S}\n")
    return stop
