"""Stopping a run cleanly: budgets, a STOP file, SIGTERM. Asked at every stage boundary.

A stage in progress is never cut short by these: the loop asks `Stopper.reason` before each
stage, and when there is a reason it records a `stop` event in the ledger and raises
`RunStopped`. Everything done so far is committed, so `rsi resume RUN` goes on from the next stage
(with a budget raised by `--set budget.cpu_hours=...` if a budget stopped it). Budgets count the
whole run, every session of it, from the ledger's stage costs. A second SIGTERM does not wait: the
default handler ends the process, and the stage it was in rolls back as if killed.

    touch runs/quick-20261122-101500/STOP     # stop after the current stage
    kill -TERM <pid of rsi run>               # the same
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from rsi.config import BudgetConfig
from rsi.errors import RsiError

STOP_FILE = "STOP"


class RunStopped(RsiError):
    """The run stopped cleanly before its end (budget, STOP file or SIGTERM); it can be resumed."""

    def __init__(self, run_dir: Path, cycle: int, stage: str, reason: str) -> None:
        self.run_dir, self.cycle, self.stage, self.reason = run_dir, cycle, stage, reason
        self.detail: dict = {}  # more for the ledger's stop event (e.g. the candidate awaiting review)
        hint = " with a larger budget (--set budget.<key>=...)" if reason.startswith("budget.") else ""
        super().__init__(f"run stopped before cycle {cycle} {stage}: {reason}. Everything before it is in the "
                         f"ledger; continue with `rsi resume {run_dir}`{hint}.")


def budget_spent(budget: BudgetConfig, totals: dict[str, float]) -> str | None:
    """Which budget the run's `totals` (`Ledger.totals()`) have used up, or None."""
    for key, spent, unit in (("wall_hours", totals["wall_s"] / 3600, "wall hours in stages"),
                             ("cpu_hours", totals["cpu_s"] / 3600, "CPU hours"),
                             ("generated_tokens", totals["generated_tokens"], "tokens generated")):
        limit = getattr(budget, key)
        if limit is not None and spent >= limit:
            return f"budget.{key} is spent ({spent:,.4g} {unit} of {limit:,.4g})"
    return None


class Stopper:
    """Catches SIGTERM while the loop runs (a context manager) and answers why to stop, if at all."""

    def __init__(self, run_dir: Path) -> None:
        self.stop_file = Path(run_dir) / STOP_FILE
        self.signalled = False
        self._previous = None

    def __enter__(self) -> Stopper:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def _on_sigterm(self, signum: int, frame: object) -> None:
        self.signalled = True
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
        os.write(2, b"\nSIGTERM: stopping after the current stage (send SIGTERM again to stop now)\n")

    def reason(self, budget: BudgetConfig, totals: dict[str, float]) -> str | None:
        """Why the run should stop before its next stage; None to go on. A STOP file it answers for
        is removed, so `rsi resume` runs again."""
        if self.signalled:
            return "SIGTERM received"
        if self.stop_file.exists():
            self.stop_file.unlink(missing_ok=True)
            return f"{self.stop_file} was found (and removed)"
        return budget_spent(budget, totals)
