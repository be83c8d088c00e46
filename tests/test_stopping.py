"""Budgets, the STOP file and SIGTERM as `rsi.run.stopping` sees them (the loop's use is in test_end_to_end)."""

import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest

from rsi.config import BudgetConfig, load_config, resumed_config
from rsi.errors import ConfigError
from rsi.run.stopping import Interrupted, Stopper, budget_spent, stale_stop

SPENT = {"wall_s": 7200.0, "cpu_s": 3600.0, "generated_tokens": 5000, "train_sequences": 0, "train_tokens": 0}


def test_each_budget_is_spent_at_its_limit_and_none_by_default():
    assert budget_spent(BudgetConfig(), SPENT) is None
    assert budget_spent(BudgetConfig(wall_hours=2.5, cpu_hours=1.5, generated_tokens=6000), SPENT) is None
    assert budget_spent(BudgetConfig(wall_hours=2), SPENT).startswith("budget.wall_hours is spent (2 wall hours")
    assert budget_spent(BudgetConfig(cpu_hours=1), SPENT).startswith("budget.cpu_hours is spent (1 CPU hours of 1)")
    assert "budget.generated_tokens is spent (5,000" in budget_spent(BudgetConfig(generated_tokens=5000), SPENT)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_file_is_answered_once_and_a_signal_until_the_end(tmp_path, sig):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with Stopper(tmp_path) as stopper:
        assert stopper.reason(BudgetConfig(), SPENT) is None
        (tmp_path / "STOP").touch()
        assert "STOP was found" in stopper.reason(BudgetConfig(), SPENT)
        assert not (tmp_path / "STOP").exists() and stopper.reason(BudgetConfig(), SPENT) is None
        os.kill(os.getpid(), sig)  # caught: the process goes on
        assert stopper.reason(BudgetConfig(), SPENT) == f"{signal.Signals(sig).name} received"
        with pytest.raises(Interrupted) as second:  # a second one stops at once
            os.kill(os.getpid(), sig)
            time.sleep(1)
        assert second.value.signum == sig
    assert {s: signal.getsignal(s) for s in before} == before
    with Stopper(tmp_path) as stopper:  # the next session starts afresh
        assert stopper.reason(BudgetConfig(), SPENT) is None


def test_a_stop_file_older_than_the_last_stage_is_removed_with_a_note(tmp_path):
    stop = tmp_path / "STOP"
    assert stale_stop(tmp_path, "2026-01-01T00:00:00+00:00") is None  # no file
    stop.touch()
    assert stale_stop(tmp_path, None) is None and stop.exists()  # no stage yet: it is meant for this session
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat(timespec="seconds")
    assert stale_stop(tmp_path, "2020-01-01T00:00:00+00:00") is None and stop.exists()  # newer than the stage
    note = stale_stop(tmp_path, future)
    assert note and "left from an earlier session" in note and not stop.exists()


def test_resume_may_raise_limits_but_nothing_else():
    stored = load_config("quick").model_dump(mode="json")
    cfg = resumed_config(stored, ["budget.cpu_hours=2", "loop.cycles=9"])
    assert (cfg.budget.cpu_hours, cfg.loop.cycles, cfg.train) == (2, 9, load_config("quick").train)
    assert stored["budget"]["cpu_hours"] is None  # the stored config is not modified
    assert resumed_config(stored, ["gate.require_approval=true"]).gate.require_approval
    with pytest.raises(ConfigError, match=r"'model.hidden_size=8'.*only budget.\*, loop.cycles, gate.require_app"):
        resumed_config(stored, ["model.hidden_size=8"])
    with pytest.raises(ConfigError, match=r"'budget.cpu_hours'.*greater than 0"):
        resumed_config(stored, ["budget.cpu_hours=0"])
