"""Recipe search (`rsi search`): the space and its refusals, a run's recipe changed between cycles
(`rsi resume --recipe`), a run copied at a cycle boundary, the search ledger, and a small search on
Ray Tune end to end."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rsi.config import load_config
from rsi.errors import ConfigError, RunDirError
from rsi.ledger import Ledger
from rsi.search.fork import fork, snapshot
from rsi.search.record import SearchLedger
from rsi.search.space import load_space
from rsi.search.trial import figures

RSI = [sys.executable, "-m", "rsi.cli"]
# a quick run cut to seconds a cycle: the search tests compare runs, not how far they get
TINY = ["loop.cycles=1", "base.steps=150", "train.steps=20", "propose.problems_per_difficulty=20",
        "eval.problems_per_difficulty=20", "eval.max_difficulty=6", "loop.max_difficulty=6"]

pytestmark = pytest.mark.xdist_group("ray")  # searches run on Ray Tune: one local Ray at a time


def rsi(*args, check=True, cwd=None):
    out = subprocess.run([*RSI, *args], capture_output=True, text=True, timeout=900, cwd=cwd)
    assert not check or out.returncode == 0, out.stdout + out.stderr
    return out


def space_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_a_space_samples_and_perturbs_inside_its_ranges_and_rounds_integer_settings(tmp_path):
    cfg = load_config("quick")
    space = load_space(space_file(tmp_path, "train.lr: {loguniform: [1.0e-4, 1.0e-2]}\ntrain.steps: {uniform: "
                                            "[20.5, 80]}\ngenerate.temperature: {choice: [0.6, 0.8, 1.0]}\n"), cfg)
    rng = random.Random(0)
    for _ in range(200):
        r = space.sample(rng)
        assert 1e-4 <= r["train.lr"] <= 1e-2 and 21 <= r["train.steps"] <= 80 and isinstance(r["train.steps"], int)
        p = space.perturb(r, rng)
        assert 1e-4 <= p["train.lr"] <= 1e-2 and p["generate.temperature"] in (0.6, 0.8, 1.0)
        assert isinstance(p["train.steps"], int) and 21 <= p["train.steps"] <= 80
    assert space.overrides({"train.lr": 0.001, "train.steps": 30, "generate.temperature": 0.8}) == [
        "train.lr=0.001", "train.steps=30", "generate.temperature=0.8"]


@pytest.mark.parametrize("text, says", [
    ("train.lrr: {choice: [1]}", "space.yaml:1: key 'train.lrr'"),
    ("train.lr: {choice: [0.001]}\ntask: {choice: [sort, addition]}", "space.yaml:2: key 'task' is frozen"),
    ("curriculum.threshold: {uniform: [0.5, 0.9]}", "'curriculum.threshold' is frozen"),
    ("model.layers: {choice: [2, 4]}", "only with loop.mode: refresh"),
    ("train: {choice: [1]}", "is a section"),
    ("train.lr: {normal: [0, 1]}", "must be one of {choice"),
    ("train.lr: {uniform: [0.1]}", "takes [lo, hi]"),
    ("train.lr: {uniform: [0.2, 0.1]}", "is empty"),
    ("train.lr: {loguniform: [0, 1]}", "lo > 0"),
    ("train.steps: {choice: [-5, 10]}", "greater than or equal to 0"),
    ("generate.temperature: {uniform: [0.5, 2.5]}\nlabel.vote_threshold: {uniform: [0.5, 1.5]}",
     "space.yaml:2: key 'label.vote_threshold'"),
    ("train.steps: {uniform: [1.2, 1.8]}", "whole numbers"),
    ("[1, 2]", "must map config keys"),
    ("train.lr: {choice: [0.1, 0.1]}", "a value twice"),
])
def test_a_bad_space_is_refused_naming_the_file_line_and_key(tmp_path, text, says):
    with pytest.raises(ConfigError) as e:
        load_space(space_file(tmp_path, text + "\n"), load_config("quick"))
    assert says in str(e.value) and "space.yaml" in str(e.value)


def test_the_models_shape_is_searchable_in_refresh_mode(tmp_path):
    space = load_space(space_file(tmp_path, "model.hidden_size: {choice: [32, 64]}\n"),
                       load_config("quick", ["loop.mode=refresh"]))
    assert space.dimensions[0].values == (32, 64)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("search") / "tiny"
    rsi("run", "quick", "--run-dir", str(run), *[a for kv in TINY for a in ("--set", kv)])
    return run


def test_a_recipe_changes_between_cycles_is_recorded_and_resumes_as_it_ran(tiny_run, tmp_path):
    run = tmp_path / "run"
    snapshot(tiny_run, run)
    bad = rsi("resume", str(run), "--set", "loop.cycles=2", "--recipe", "task=addition", check=False)
    assert bad.returncode == 2 and "recipe change 'task=addition'" in bad.stderr
    rsi("resume", str(run), "--set", "loop.cycles=2", "--recipe", "train.steps=7", "--recipe", "train.lr=0.002")
    with Ledger(run / "ledger.sqlite", readonly=True) as led:
        (event,) = led.events("recipe")
        assert event["cycle"] == 2 and event["detail"]["overrides"] == ["train.steps=7", "train.lr=0.002"]
        train = {r["cycle"]: r for r in led.costs() if r["stage"] == "train"}
        steps = [m["metrics"] for m in led.metrics() if m["stage"] == "train" and m["cycle"] == 2]
    assert train[2]["train_sequences"] * 20 == train[1]["train_sequences"] * 7  # 7 steps, not 20, in cycle 2
    assert steps
    rsi("resume", str(run), "--set", "loop.cycles=2", "--recipe", "train.steps=7", "--recipe", "train.lr=0.002")
    with Ledger(run / "ledger.sqlite", readonly=True) as led:
        assert len(led.events("recipe")) == 1  # the same recipe again records nothing


def test_a_recipe_cannot_change_inside_a_cycle(tiny_run, tmp_path):
    run = tmp_path / "run"
    snapshot(tiny_run, run)
    con = sqlite3.connect(run / "ledger.sqlite")  # make it stand after cycle 1's evaluate, as a stopped run would
    con.execute("DELETE FROM stages WHERE cycle = 1 AND stage = 'gate'")
    con.commit()
    con.close()
    out = rsi("resume", str(run), "--recipe", "train.lr=0.002", check=False)
    assert out.returncode == 2 and "a recipe changes between cycles" in out.stderr


def test_a_snapshot_copies_only_the_promoted_champion_verified_and_a_fork_says_where_it_came_from(tiny_run, tmp_path):
    snap = snapshot(tiny_run, tmp_path / "snap")
    with Ledger(tiny_run / "ledger.sqlite", readonly=True) as led:
        champion = (tiny_run / "champion").read_text().strip()
        assert snap["champion"] == champion and snap["cycle"] == 1
    assert [p.name for p in (tmp_path / "snap" / "models").iterdir()] == [champion]
    fork(tmp_path / "snap", tmp_path / "forked", {"trial": "t1", **snap})
    with Ledger(tmp_path / "forked" / "ledger.sqlite", readonly=True) as led:
        (event,) = led.events("fork")
    assert event["detail"]["weights_sha256"] == snap["weights_sha256"] and event["cycle"] == 1
    weights = next((tmp_path / "snap" / "models" / champion).glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(Exception, match="does not match the sha256"):
        fork(tmp_path / "snap", tmp_path / "forked-bad", {"trial": "t1", **snap})


def test_a_search_directory_holding_another_search_is_refused(tmp_path):
    with SearchLedger(tmp_path) as book:
        book.set_search({"a": 1}, {"train.lr": {"choice": [1]}}, "pbt", 4, None)
        book.set_search({"a": 1}, {"train.lr": {"choice": [1]}}, "pbt", 4, None)  # the same: resumed
        with pytest.raises(RunDirError, match="holds a different search .*population"):
            book.set_search({"a": 1}, {"train.lr": {"choice": [1]}}, "pbt", 8, None)


def test_a_fork_reported_again_is_one_lineage_row(tmp_path):
    """A trial that Tune restarts before its first report (the search stopped or killed then) reports its
    fork from the root again: the lineage holds each copy once."""
    with SearchLedger(tmp_path) as book:
        for _ in range(2):
            book.add_lineage("t1", 0, "root", "cycle-0000", "ab" * 32)
        book.add_lineage("t1", 2, "t2", "cycle-0002", "cd" * 32)  # a later copy is a row of its own
        assert [(x["cycle"], x["from_trial"]) for x in book.lineage()] == [(0, "root"), (2, "t2")]


def test_the_best_recipe_is_the_configs_own_unless_a_trial_beat_it(tmp_path):
    """The calibration run (the config's own recipe) is a contender for best: the vote search whose trials
    all stayed below it must not name one of them."""
    from rsi.views.search import best_of, own_recipe

    info = {"config": {"train": {"lr": 5e-4, "steps": 400}}, "space": {"train.lr": {}, "train.steps": {}}}
    own = own_recipe(tmp_path, info, {"cycle": 1, "frontier": 6, "acc_above": 0.2, "cpu_s": 300.0})
    assert own["recipe"] == {"train.lr": 5e-4, "train.steps": 400} and own["trial"] == "calibration"
    row = {"trial": "t1", "cycle": 4, "frontier": 5, "acc_above": 0.9, "cpu_s": 900.0, "recipe": {}}
    assert best_of([row], own) is own
    tie = {**row, "frontier": 6, "acc_above": 0.2}  # as good, more compute: the hand-set recipe stays best
    assert best_of([row, tie], own) is own
    better = {**row, "frontier": 6, "acc_above": 0.5}
    assert best_of([row, better, tie], own) is better
    assert best_of([row], None) is row and best_of([], None) is None


def test_a_pbt_round_starts_the_trial_expected_to_take_longest_first(monkeypatch):
    """Synchronous PBT waits for a round's slowest trial: it starts first, the short ones fill the other
    slots. Tune's own rule still comes first (a trial behind in training time runs before the rest)."""
    from types import SimpleNamespace

    from ray.tune.experiment import Trial
    from ray.tune.schedulers import PopulationBasedTraining

    from rsi.search.tuned import LongestFirstPBT

    pbt = LongestFirstPBT(time_attr="training_iteration", perturbation_interval=1, metric="score", mode="max",
                          hyperparam_mutations={"train.lr": [1e-3, 2e-3]}, synch=True)
    trials = [Trial("run_trial", config={}, trial_id=f"t{i}", stub=True) for i in range(4)]
    controller = SimpleNamespace(search_alg=None, get_trials=lambda: trials, get_live_trials=lambda: trials)
    for t in trials:
        pbt.on_trial_add(controller, t)
    assert pbt.choose_trial_to_run(controller) is trials[0]  # nothing measured: Tune's order
    for t, took in zip(trials[:3], (4.0, 12.0, 5.0), strict=True):  # round 1, t3 not yet run
        t.status = Trial.RUNNING
        assert pbt.on_trial_result(controller, t, {"training_iteration": 1, "score": 0.0,
                                                   "time_this_iter_s": took}) == "PAUSE"
        t.status = Trial.PAUSED
    assert pbt.choose_trial_to_run(controller) is trials[3]  # behind in training time: first, whatever it takes
    pbt._trial_state[trials[3]].last_train_time, pbt._next_perturbation_sync = 1, 2  # round 2 is due
    assert pbt.choose_trial_to_run(controller) is trials[3]  # its time unknown (its report lost): as if longest
    trials[3].status = Trial.RUNNING
    assert pbt.choose_trial_to_run(controller) is trials[1]
    trials[1].status = Trial.RUNNING
    assert pbt.choose_trial_to_run(controller) is trials[2]
    monkeypatch.setattr(PopulationBasedTraining, "_exploit", lambda *a: None)
    pbt._exploit(controller, trials[0], trials[1])  # t0 now runs t1's (perturbed) recipe: as long as t1's
    assert pbt.choose_trial_to_run(controller) is trials[0]


def test_a_small_pbt_search_runs_trials_as_runs_records_lineage_and_reports(tmp_path):
    space = space_file(tmp_path, "train.lr: {loguniform: [3.0e-4, 3.0e-3]}\ntrain.steps: {choice: [10, 20, 30]}\n")
    sets = [a for kv in TINY[1:] for a in ("--set", kv)]
    search = ["search", "quick", "--space", str(space), "--trials", "2", "--cycles", "2", "--dir", str(tmp_path / "s"),
              *sets]
    refused = rsi(*search, "--budget-cpu-hours", "0.001", check=False)
    assert refused.returncode == 2 and "a population of 2 needs at least" in refused.stderr
    assert not (tmp_path / "s" / "trials").exists()  # no trial started
    rsi(*search)  # the same search, with the budget raised: the root and calibration runs are not run again
    with SearchLedger(tmp_path / "s", readonly=True) as book:
        rows, lineage = book.iterations(), book.lineage()
    assert sorted((r["trial"], r["cycle"]) for r in rows) == sorted((t, c) for t in {r["trial"] for r in rows}
                                                                    for c in (1, 2))
    trials = {r["trial"] for r in rows}
    assert len(trials) == 2 and [x["from_trial"] for x in lineage[:2]] == ["root", "root"]
    (exploit,) = lineage[2:]  # synchronous PBT: after cycle 1 the lower half copies the upper half's champion
    assert exploit["from_trial"] in trials and exploit["trial"] == (trials - {exploit["from_trial"]}).pop()
    copied = tmp_path / "s" / "trials" / exploit["trial"] / "seg-1"
    with Ledger(copied / "ledger.sqlite", readonly=True) as led:
        first, event = led.events("fork")  # the source's own fork from the root, then this one
        assert len([c for c, s in led.completed_stages() if s == "base"]) == 1
    assert first["detail"]["trial"] == "root" and event["detail"]["trial"] == exploit["from_trial"]
    assert event["detail"]["cycle"] == 1
    assert event["detail"]["weights_sha256"] == exploit["weights_sha256"] and len(exploit["weights_sha256"]) == 64
    for r in rows:  # every trial is a normal run with its recipe in its own ledger
        with Ledger(Path(r["run_dir"]) / "ledger.sqlite", readonly=True) as led:
            assert led.recipe_overrides(r["cycle"])[-2:] == [f"train.lr={r['recipe']['train.lr']}",
                                                             f"train.steps={r['recipe']['train.steps']}"]
    st = json.loads(rsi("status", str(tmp_path / "s"), "--json").stdout)
    assert st["trials"] == 2 and st["cycles_reported"] == 4 and st["best"]["frontier"] >= st["base_frontier"]
    assert st["best"]["frontier"] >= st["calibration"]["frontier"]
    assert "Recipe search" in (Path(rsi("report", str(tmp_path / "s")).stdout.split("wrote ")[1].split()[0])
                               ).read_text()


def test_a_random_search_stopped_by_its_budget_goes_on_with_a_larger_one(tmp_path):
    """`--scheduler random`: Tune samples each trial's recipe once; no trial is perturbed or copied. A
    spent budget stops the search midway (exit 3, as a run's), every trial kept; so does SIGTERM (a STOP
    file: the next test); the same search with a larger budget finishes it, each cycle recorded once.
    No `--dir` at first: the search goes to the default, relative `searches/quick-<time>`."""
    space = space_file(tmp_path, "train.lr: {loguniform: [3.0e-4, 3.0e-3]}\n")
    search = ["search", "quick", "--space", str(space), "--trials", "2", "--cycles", "3", "--scheduler", "random",
              *[a for kv in TINY[1:] for a in ("--set", kv)]]
    refused = rsi(*search, "--budget-cpu-hours", "0.0001", cwd=tmp_path, check=False)  # runs root and calibration
    assert refused.returncode == 2 and "a population of 2 needs at least" in refused.stderr, refused.stderr
    (where,) = (tmp_path / "searches").glob("quick-*")
    root, calib = figures(where / "root")["cpu_s"], figures(where / "calibration")["cpu_s"]
    budget = (calib + 2.2 * (calib - root)) / 3600  # about two of the six cycles
    stopped = rsi(*search, "--dir", str(where), "--budget-cpu-hours", f"{budget:.6f}", check=False)
    assert stopped.returncode == 3 and "its budget is spent" in stopped.stderr, stopped.stdout + stopped.stderr
    st = json.loads(rsi("status", str(where), "--json").stdout)
    assert st["stopped"].startswith("its budget is spent") and not st["finished"]
    assert st["cycles_reported"] < 6 and st["cpu_hours"] >= budget
    again = rsi(*search, "--dir", str(where), "--budget-cpu-hours", f"{budget:.6f}", check=False)
    assert again.returncode == 3 and "its budget is spent" in again.stderr  # refused before Tune starts
    with SearchLedger(where, readonly=True) as book:
        assert len(book.iterations()) == st["cycles_reported"]
        assert book.events()[-1]["kind"] == "stopped"  # still stopped, and why: `rsi status` says so
        assert book.events()[-1]["detail"]["why"].startswith("its budget is spent")
    before = st["cycles_reported"]
    proc = subprocess.Popen([*RSI, *search, "--dir", str(where)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:  # SIGTERM once a cycle more is in: Tune is running
        with SearchLedger(where, readonly=True) as book:
            if len(book.iterations()) > before:
                proc.send_signal(signal.SIGTERM)
                break
        time.sleep(0.2)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 3 and "interrupted (Ctrl-C or SIGTERM)" in stderr, stderr
    rsi(*search, "--dir", str(where))  # no budget now: the search goes on to its end
    with SearchLedger(where, readonly=True) as book:
        rows, lineage = book.iterations(), book.lineage()
    by_trial: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        by_trial.setdefault(r["trial"], []).append((r["cycle"], r["recipe"]["train.lr"]))
    assert len(by_trial) == 2 and all([c for c, _ in v] == [1, 2, 3] for v in by_trial.values()), by_trial
    lrs = [{lr for _, lr in v} for v in by_trial.values()]
    assert all(len(lr) == 1 for lr in lrs), lrs  # each trial kept its sampled recipe: nothing explored
    (a,), (b,) = lrs
    assert a != b and all(3.0e-4 <= lr <= 3.0e-3 for lr in (a, b))
    assert [x["from_trial"] for x in lineage] == ["root", "root"]  # forked from the root once, never exploited
    for r in rows:  # one run a trial: a cycle the budget cut was finished on resume, each cycle once
        assert r["run_dir"] == next(x["run_dir"] for x in rows if x["trial"] == r["trial"])
        with Ledger(Path(r["run_dir"]) / "ledger.sqlite", readonly=True) as led:
            assert [c for c, stage in led.completed_stages() if stage == "gate"] == [1, 2, 3]
    assert json.loads(rsi("status", str(where), "--json").stdout)["finished"]


def test_a_stop_file_stops_a_search_once_and_says_so_even_after_tune_restores_the_stopper(tmp_path, monkeypatch):
    """`touch SEARCH/STOP`: the stopper (checked by Tune about once a second) interrupts Tune as Ctrl-C
    does, records why, removes the file and does not ask twice. Tune restores a resumed search's
    stopper from a pickle made when the search began: that one must see the file too. Where Tune's
    interrupt handler is not there, it ends Tune through `stop_all` instead."""
    import pickle

    from rsi.search import tuned

    with SearchLedger(tmp_path) as book:
        book.set_search({"a": 1}, {"train.lr": {"choice": [1]}}, "pbt", 2, None)
        book.add_event("start", {"cycles": 3, "budget_cpu_hours": None})
    asked: list[int] = []
    monkeypatch.setattr(tuned, "interrupt_tune", lambda: not asked.append(1))
    began = tuned.SearchStop(tmp_path)
    assert not began("t0", {"training_iteration": 2}) and began("t0", {"training_iteration": 3})  # its cycles
    assert began.stop_all() is False and not asked
    restored = pickle.loads(pickle.dumps(began))
    (tmp_path / tuned.STOP_FILE).touch()
    assert restored.stop_all() is False and asked == [1]  # interrupted: Tune saves the experiment, resumable
    assert not (tmp_path / tuned.STOP_FILE).exists()
    (tmp_path / tuned.STOP_FILE).touch()
    assert restored.stop_all() is False and asked == [1]  # answered once
    with SearchLedger(tmp_path, readonly=True) as book:
        assert [e["detail"]["why"] for e in book.events("stop")] == ["a STOP file asked it to"]
    monkeypatch.setattr(tuned, "interrupt_tune", lambda: False)  # Tune not in this process's main thread
    assert pickle.loads(pickle.dumps(began)).stop_all() is True


def test_a_killed_asha_search_resumes_with_every_cycle_recorded_once(tmp_path):
    """SIGKILL a search (ASHA) once a trial has reported its first cycle; the same command resumes it
    from Tune's experiment state: each trial's cycles are in the search ledger once, in order, each in
    the trial's own run, and ASHA took at least one trial to the end."""
    space = space_file(tmp_path, "train.lr: {loguniform: [3.0e-4, 3.0e-3]}\n")
    where = tmp_path / "s"
    search = ["search", "quick", "--space", str(space), "--trials", "2", "--cycles", "2", "--scheduler", "asha",
              "--dir", str(where), *[a for kv in TINY[1:] for a in ("--set", kv)]]
    proc = subprocess.Popen([*RSI, *search], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if (where / "search.sqlite").exists():
            with SearchLedger(where, readonly=True) as book:
                if book.iterations():
                    break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed mid-way, not finished
    rsi(*search)
    with SearchLedger(where, readonly=True) as book:
        rows, finished = book.iterations(), book.events("finished")
    by_trial: dict[str, list[int]] = {}
    for r in rows:
        by_trial.setdefault(r["trial"], []).append(r["cycle"])
        with Ledger(Path(r["run_dir"]) / "ledger.sqlite", readonly=True) as led:
            assert (r["cycle"], "gate") in led.completed_stages()
    assert len(by_trial) == 2 and all(sorted(c) == list(range(1, len(c) + 1)) for c in by_trial.values()), by_trial
    assert max(len(c) for c in by_trial.values()) == 2 and len(finished) == 1
    for r in rows:  # a trial that went to the end ran no cycle past it
        if r["cycle"] == 2:
            with Ledger(Path(r["run_dir"]) / "ledger.sqlite", readonly=True) as led:
                assert max(c for c, s in led.completed_stages() if s == "gate") == r["cycle"]


def test_a_reader_of_a_search_ledger_being_created_reads_nothing_yet(tmp_path):
    """The file exists a moment before its tables (the ASHA test's poll once met 'no such table')."""
    from rsi.search.record import LEDGER

    sqlite3.connect(tmp_path / LEDGER).close()
    with SearchLedger(tmp_path, readonly=True) as book:
        assert (book.iterations(), book.events(), book.lineage(), book.search()) == ([], [], [], None)
    with SearchLedger(tmp_path) as book:
        book.add_event("start", {"cycles": 1})
    with SearchLedger(tmp_path, readonly=True) as book:
        assert [e["kind"] for e in book.events()] == ["start"]
