"""The search's hooks into Ray Tune: the stopper (a trial's cycles; the search's budget of CPU hours,
a STOP file and SIGTERM, each ending Tune resumably, as Ctrl-C does), the callback that writes
each reported cycle to the search ledger, and PBT's rounds ordered longest first."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import PopulationBasedTraining

from rsi.search.record import SearchLedger
from rsi.search.space import Space
from rsi.search.trial import budget_spent

STOP_FILE = "STOP"  # touch SEARCH/STOP: the search stops as a run does, resumably


def interrupt_tune() -> bool:
    """End the running Tune experiment the way Ctrl-C does (SIGUSR1, which Tune catches while it runs):
    it saves the experiment with its trials unfinished, so restoring it goes on with them. False when
    Tune's handler is not there (Tune not running in this process's main thread)."""
    if not callable(signal.getsignal(signal.SIGUSR1)):
        return False
    os.kill(os.getpid(), signal.SIGUSR1)
    return True


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While Tune runs, a first SIGTERM stops the search as Ctrl-C does; a second one kills it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, previous)
        if not interrupt_tune():
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class SearchStop(tune.Stopper):
    """A trial stops after its cycles; the whole search once it has spent its budget (counted from its
    runs' own ledgers, `search_cpu_s`: every completed stage) or a STOP file asks (answered once and
    removed), checked every second (or, should reading the ledgers take longer than 20 ms, 50 times as
    long as it took). The search stops through `interrupt_tune`, so the same command goes on with every
    trial (with a larger budget, if the budget stopped it); the cycles running then are cut at their
    stage in progress, which rolls back as in a killed run and is finished on resume. The reason is
    recorded as a `stop` event in the search ledger.

    The cycles and the budget are those of the command that started or resumed the search (its last
    `start` event), read when first asked: Tune restores a resumed search's stopper from its pickle,
    which holds nothing else, and a raised budget must hold."""

    def __init__(self, search_dir: Path) -> None:
        self.search_dir = Path(search_dir)
        self._plan: dict | None = None  # read on first use
        self._next_check, self._terminate = 0.0, False

    def __getstate__(self) -> dict:  # Tune pickles the stopper with the experiment: only where it looks
        return {"search_dir": self.search_dir}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["search_dir"])

    def plan(self) -> dict:
        if self._plan is None:
            with SearchLedger(self.search_dir, readonly=True) as book:
                self._plan = book.events("start")[-1]["detail"]
        return self._plan

    def __call__(self, trial_id: str, result: dict) -> bool:
        return result["training_iteration"] >= self.plan()["cycles"]

    def stop_all(self) -> bool:
        if self._terminate or time.monotonic() < self._next_check:
            return self._terminate
        t0, why = time.monotonic(), None
        budget = self.plan().get("budget_cpu_hours")
        if (self.search_dir / STOP_FILE).exists():
            (self.search_dir / STOP_FILE).unlink(missing_ok=True)
            why = "a STOP file asked it to"
        else:
            why = budget_spent(self.search_dir, budget)
        self._next_check = time.monotonic() + max(1.0, 50 * (time.monotonic() - t0))
        if why is None:
            return False
        with SearchLedger(self.search_dir) as book:
            book.add_event("stop", {"why": why})
        self._next_check = float("inf")
        self._terminate = not interrupt_tune()  # no handler: stop every trial for good
        return self._terminate


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


class LongestFirstPBT(PopulationBasedTraining):
    """Synchronous PBT whose rounds start the trials expected to take longest first, so that the short ones
    fill the other slots around them instead of leaving them idle while one long cycle ends the round
    (longest-processing-time-first: measured in `benchmarks/tune_slots.py`). A trial is expected to take
    as long as its last iteration did; after an exploit, as long as the trial it copied (its recipe
    now), and an unmeasured one first of all. Which trials run in a round, and PBT's decisions, are
    Tune's own."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._took: dict[str, float] = {}  # trial id -> seconds of its last iteration (or its clone source's)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        self._took[trial.trial_id] = float(result.get("time_this_iter_s", 0.0))
        return super().on_trial_result(tune_controller, trial, result)

    def _exploit(self, tune_controller, trial, trial_to_clone) -> None:  # Tune's hook; without it, the trial's own
        super()._exploit(tune_controller, trial, trial_to_clone)
        if trial_to_clone.trial_id in self._took:
            self._took[trial.trial_id] = self._took[trial_to_clone.trial_id]

    def choose_trial_to_run(self, tune_controller):
        first = super().choose_trial_to_run(tune_controller)  # the earliest in training time, Tune's rule
        if first is None:
            return None
        due = self._trial_state[first].last_train_time
        same = [t for t in tune_controller.get_trials() if t.status in (Trial.PENDING, Trial.PAUSED)
                and self._trial_state[t].last_train_time == due]
        return max(same, key=lambda t: self._took.get(t.trial_id, float("inf")))
