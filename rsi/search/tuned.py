"""The search's hooks into Ray Tune: the stopper (cycles, and the budget of CPU hours across the
population) and the callback that writes each reported cycle to the search ledger."""

from __future__ import annotations

import json
from pathlib import Path

from ray import tune

from rsi.search.record import SearchLedger
from rsi.search.space import Space


class BudgetStop(tune.Stopper):
    """A trial stops after `cycles` cycles; the whole search once its trials' own cycles have spent
    `budget_s` CPU seconds (counted from the search ledger, so a resumed search counts what it spent)."""

    def __init__(self, cycles: int, budget_s: float | None, search_dir: Path) -> None:
        self.cycles, self.budget_s = cycles, budget_s
        with SearchLedger(search_dir) as book:
            self.spent_s = book.spent_cpu_s()
        self._seen: set[tuple[str, int]] = set()

    def __call__(self, trial_id: str, result: dict) -> bool:
        if (trial_id, result["cycle"]) not in self._seen:
            self._seen.add((trial_id, result["cycle"]))
            self.spent_s += result["cycle_cpu_s"]
        return result["training_iteration"] >= self.cycles

    def stop_all(self) -> bool:
        return self.budget_s is not None and self.spent_s >= self.budget_s


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
