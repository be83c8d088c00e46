"""The search's hooks into Ray Tune: the stopper (a trial's cycles, and the search's budget of CPU
hours) and the callback that writes each reported cycle to the search ledger."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from ray import tune

from rsi.search.record import SearchLedger
from rsi.search.space import Space
from rsi.search.trial import search_cpu_s


class BudgetStop(tune.Stopper):
    """A trial stops after its cycles; the whole search once it has spent its budget, counted from its
    runs' own ledgers (`search_cpu_s`: every completed stage), checked every second (or, should reading
    the ledgers take longer than 20 ms, 50 times as long as it took).

    The cycles and the budget are those of the command that started or resumed the search (its last
    `start` event), read when first asked: Tune restores a resumed search's stopper from a pickle made
    when the search began, and a raised budget must hold. A spent budget interrupts Tune the way Ctrl-C
    does (SIGUSR1, which Tune catches while it runs): Tune saves the experiment with its trials
    unfinished, so the same command with a larger budget goes on with them; the cycles running then are
    cut at their stage in progress, which rolls back as in a killed run and is finished on resume."""

    def __init__(self, search_dir: Path) -> None:
        self.search_dir = Path(search_dir)
        self._plan: dict | None = None  # None in the pickle: read on first use
        self._next_check, self._terminate = 0.0, False

    def plan(self) -> dict:
        if self._plan is None:
            with SearchLedger(self.search_dir, readonly=True) as book:
                self._plan = book.events("start")[-1]["detail"]
        return self._plan

    def __call__(self, trial_id: str, result: dict) -> bool:
        return result["training_iteration"] >= self.plan()["cycles"]

    def stop_all(self) -> bool:
        budget = self.plan().get("budget_cpu_hours")
        if self._terminate or budget is None or time.monotonic() < self._next_check:
            return self._terminate
        t0 = time.monotonic()
        spent = search_cpu_s(self.search_dir)
        self._next_check = time.monotonic() + max(1.0, 50 * (time.monotonic() - t0))
        if spent < budget * 3600:
            return False
        if callable(signal.getsignal(signal.SIGUSR1)):  # Tune's handler: end the experiment, trials kept
            self._next_check = float("inf")
            os.kill(os.getpid(), signal.SIGUSR1)
            return False
        self._terminate = True  # no handler (Tune not in the main thread): stop every trial for good
        return True


class LedgerCallback(tune.Callback):
    """Each reported cycle into the search ledger: the trial, its recipe, its figures, its lineage."""

    def __init__(self, search_dir: Path, space: Space) -> None:
        self.search_dir, self.space = Path(search_dir), space

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        recipe = json.loads(result["recipe"])
        with SearchLedger(self.search_dir) as book:
            book.add_trial(trial.trial_id, recipe)
            origin = json.loads(result["forked_from"])
            if origin:
                book.add_lineage(trial.trial_id, origin["cycle"], origin["trial"], origin["champion"],
                                 origin.get("weights_sha256", ""))
            book.add_iteration(trial.trial_id, result["cycle"], result["run_dir"], recipe, result["frontier"],
                               result["acc_above"], result["score"], result["run_cpu_s"], result["run_wall_s"],
                               result["cycle_cpu_s"], result["cycle_wall_s"], result["promoted"])
