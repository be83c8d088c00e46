"""`rsi search`: a search over how rsi trains (its recipe), on Ray Tune, keeping what the gates accept.

The search is a driver around normal runs: it adds no state to the loop and no stage to a cycle.

1. The root run (`SEARCH/root`) trains the base model once (cycle 0) with the config as given.
2. A calibration run, forked from the root, runs cycle 1 with the config's own recipe: what one cycle
   costs here. A population the budget cannot run one cycle each is refused before any trial starts.
3. Tune runs the population: each trial is a run forked from the root (`rsi.search.trial`), one Tune
   iteration per cycle, scored by its gain in frontier (with the accuracy just above it as the
   fraction) per CPU hour. `pbt`: Tune's PopulationBasedTraining, synchronous (every trial finishes
   the cycle first), which after every cycle lets the worst quarter (at least one trial) copy a
   best-quarter trial's promoted champion and ledger (a snapshot, verified by its digests) and
   perturbs the recipe (`Proposer.explore`); `asha`: successive halving;
   `random`: every trial to the end.
4. A callback writes every trial's cycles, recipes, lineage and cost to the search ledger
   (`rsi.search.record`). A budget of CPU hours (root, calibration and every completed stage of every
   trial, from the runs' ledgers) stops the search when spent, as a run's budget stops a run: resumable,
   with a larger budget (`rsi.search.tuned.SearchStop`). So do a STOP file in the search directory,
   Ctrl-C and SIGTERM. A killed or stopped search resumes from Tune's experiment state, each trial
   from its last snapshot and its run's own ledger: no trial or cycle is lost or recorded twice. A
   search that stops before its end raises `SearchStopped`.

The seam for a model proposing recipe changes is `Proposer`: PBT's explore calls its `explore`, whose
first implementation keeps Tune's perturbation (values kept inside the space, integers rounded).
"""

from __future__ import annotations

import json
import random
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from rsi.config import Config
from rsi.errors import ConfigError, RsiError
from rsi.search.fork import fork, snapshot
from rsi.search.record import SearchLedger
from rsi.search.space import Space
from rsi.search.trial import CALIBRATION, ROOT, TRIALS, budget_spent, figures, run_trial, search_cpu_s

SCHEDULERS = ("pbt", "asha", "random")


class SearchStopped(RsiError):
    """The search stopped before its end (its budget spent, or interrupted); the same command resumes it."""

    def __init__(self, search_dir: Path, why: str, raise_budget: bool) -> None:
        self.search_dir = search_dir
        hint = " and a larger --budget-cpu-hours" if raise_budget else ""
        super().__init__(f"search {search_dir} stopped: {why}. Every reported cycle is in its ledger and every trial "
                         f"in Tune's state; to go on, run the same command with --dir {search_dir}{hint}.")


class Proposer:
    """What proposes a trial's next recipe when PBT explores. The first implementation keeps Tune's
    perturbation and only holds each value to its dimension (inside the range, whole numbers where the
    setting takes them). A model proposing recipes would implement `explore` from the same inputs."""

    def __init__(self, space: Space) -> None:
        self.space = space

    def explore(self, config: dict) -> dict:
        for d in self.space.dimensions:
            value = config[d.key]
            if d.kind == "choice":
                if value not in d.values:
                    value = min(d.values, key=lambda v: abs(v - value) if isinstance(v, int | float) else 0)
            else:
                value = d._fit(min(d.values[1], max(d.values[0], value)))
            config[d.key] = value
        return config


@dataclass(frozen=True)
class SearchPlan:
    cfg: Config
    space: Space
    search_dir: Path
    population: int
    cycles: int
    scheduler: str = "pbt"
    budget_cpu_hours: float | None = None
    cpus_per_trial: float = 1.0

    def __post_init__(self) -> None:  # Tune's storage wants an absolute path ('searches/...' has no URI scheme)
        object.__setattr__(self, "search_dir", Path(self.search_dir).resolve())


def _domains(space: Space) -> dict:
    from ray import tune

    out = {}
    for d in space.dimensions:
        if d.kind == "choice":
            out[d.key] = tune.choice(list(d.values))
        elif d.integer:
            out[d.key] = (tune.randint(d.values[0], d.values[1] + 1) if d.kind == "uniform"
                          else tune.lograndint(d.values[0], d.values[1] + 1))
        else:
            out[d.key] = tune.uniform(*d.values) if d.kind == "uniform" else tune.loguniform(*d.values)
    return out


def _prepare(plan: SearchPlan, console: Console) -> tuple[dict, float]:
    """The root's base model and the calibration cycle (each run once, resumed if the search is);
    returns the root's figures at cycle 0 and the CPU seconds of one calibration cycle."""
    from rsi.loop import resume, start

    root, calib = plan.search_dir / ROOT, plan.search_dir / CALIBRATION
    cfg0 = plan.cfg.model_copy(update={"loop": plan.cfg.loop.model_copy(update={"cycles": 0})})
    console.print("search: the root run trains the base model (cycle 0) once for every trial")
    start(cfg0, root, console) if not (root / "ledger.sqlite").exists() else resume(root, console)
    base = figures(root)
    if not (calib / "ledger.sqlite").exists():
        tmp = plan.search_dir / ".calibration-snapshot"
        shutil.rmtree(tmp, ignore_errors=True)
        fork_from = {"trial": ROOT, "segment": ROOT, **snapshot(root, tmp)}
        fork(tmp, calib, fork_from)
        shutil.rmtree(tmp)
    console.print("search: a calibration cycle with the config's own recipe measures what a cycle costs")
    resume(calib, console, ["loop.cycles=1"])
    return base, figures(calib)["cpu_s"] - base["cpu_s"]


def check_budget(plan: SearchPlan, spent_s: float, cycle_s: float) -> None:
    """Refuse a population the budget cannot run one cycle each (from the calibration's measured cycle)."""
    if plan.budget_cpu_hours is None:
        return
    left = plan.budget_cpu_hours * 3600 - spent_s
    if left < plan.population * cycle_s:
        raise ConfigError(
            f"--budget-cpu-hours {plan.budget_cpu_hours:g} leaves {max(left, 0) / 3600:.3f} CPU h after the base model "
            f"and the calibration cycle ({spent_s / 3600:.3f} CPU h), and one cycle of the config's recipe cost "
            f"{cycle_s / 3600:.3f} CPU h here: a population of {plan.population} needs at least "
            f"{plan.population * cycle_s / 3600:.3f}. Raise the budget or lower --trials (at most "
            f"{max(0, int(left // cycle_s))} now).")


def _tuner(plan: SearchPlan, base: dict):
    """Tune's Tuner for the search: restored from `SEARCH/tune` when the search ran before, else new."""
    from ray import tune

    from rsi.search.tuned import LedgerCallback, SearchStop

    trainable = tune.with_resources(
        tune.with_parameters(run_trial, search_dir=str(plan.search_dir), space=plan.space, base=base,
                             cycles=plan.cycles),
        {"cpu": plan.cpus_per_trial})
    # synchronous PBT copies a checkpoint of the round just ended, restored within the next round: the
    # two newest checkpoints Tune keeps per trial always hold it
    warnings.filterwarnings("ignore", message="Using `CheckpointConfig.num_to_keep <= 2` with PBT")
    experiment = plan.search_dir / "tune"
    if tune.Tuner.can_restore(str(experiment)):  # its stopper and scheduler come back from Tune's pickle
        return tune.Tuner.restore(str(experiment), trainable, resume_errored=True)
    metric = {"metric": "score", "mode": "max"}
    if plan.scheduler == "pbt":
        from rsi.search.tuned import LongestFirstPBT

        scheduler = LongestFirstPBT(time_attr="training_iteration", perturbation_interval=1,
                                    hyperparam_mutations=_domains(plan.space),
                                    custom_explore_fn=Proposer(plan.space).explore, quantile_fraction=0.25,
                                    synch=True, **metric)
    elif plan.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=plan.cycles, grace_period=1, **metric)
    else:
        scheduler = None
    run_config = tune.RunConfig(name="tune", storage_path=str(plan.search_dir), stop=SearchStop(plan.search_dir),
                                callbacks=[LedgerCallback(plan.search_dir, plan.space)], verbose=0,
                                checkpoint_config=tune.CheckpointConfig(num_to_keep=2))
    search_alg = tune.search.BasicVariantGenerator(random_state=random.Random(plan.cfg.seed).randrange(2**31))
    # reuse_actors: a trial paused by PBT (or one that ended) leaves its process, torch imported, to the next
    tune_config = tune.TuneConfig(num_samples=plan.population, scheduler=scheduler, search_alg=search_alg,
                                  reuse_actors=True, **(metric if scheduler is None else {}))
    return tune.Tuner(trainable, param_space=_domains(plan.space), run_config=run_config, tune_config=tune_config)


def _unfinished(experiment: Path) -> int:
    """Trials Tune saved as not yet at their end (an interrupted experiment), read back from its state."""
    from ray.tune import ExperimentAnalysis

    return sum(t.status not in ("TERMINATED", "ERROR") for t in ExperimentAnalysis(str(experiment)).trials)


def run_search(plan: SearchPlan, console: Console | None = None) -> Path:
    """Run (or resume) the search `plan` describes; returns its directory. Raises `SearchStopped` when
    the search stops before its end (its budget spent, a STOP file, Ctrl-C or SIGTERM)."""
    import ray

    console = console or Console()
    plan.search_dir.mkdir(parents=True, exist_ok=True)
    space_json = {d.key: {d.kind: list(d.values)} for d in plan.space.dimensions}
    with SearchLedger(plan.search_dir) as book:
        book.set_search(plan.cfg.model_dump(mode="json"), space_json, plan.scheduler, plan.population,
                        plan.budget_cpu_hours)
        book.add_event("start", {"cycles": plan.cycles, "budget_cpu_hours": plan.budget_cpu_hours})
    base, cycle_s = _prepare(plan, console)
    if not (plan.search_dir / TRIALS).exists():  # no trial started yet
        check_budget(plan, figures(plan.search_dir / CALIBRATION)["cpu_s"], cycle_s)
    elif why := budget_spent(plan.search_dir, plan.budget_cpu_hours):  # refused before Tune starts
        with SearchLedger(plan.search_dir) as book:  # still stopped, and why: what `rsi status SEARCH` says
            book.add_event("stopped", {"why": why, "refused": True})
        raise SearchStopped(plan.search_dir, why, raise_budget=True)
    t0 = time.perf_counter()
    if not ray.is_initialized():  # a search on this machine; scale.ray.address's cluster is the runs' own
        from rsi.scale.ray_pool import LOCAL_RAY

        ray.init(_system_config=LOCAL_RAY, include_dashboard=False, log_to_driver=False, configure_logging=False)
    from rsi.search.tuned import sigterm_as_interrupt

    with sigterm_as_interrupt():
        results = _tuner(plan, base).fit()
    if results.errors:
        raise RsiError(f"{len(results.errors)} of the search's trials failed; the first: {results.errors[0]}. Their "
                       f"runs are under {plan.search_dir / 'trials'}; fix the cause and run the same command again "
                       "to resume the search.")
    ended = {"wall_s": time.perf_counter() - t0, "cpu_s": search_cpu_s(plan.search_dir)}
    if _unfinished(plan.search_dir / "tune"):  # Tune was interrupted: by the stopper, Ctrl-C or SIGTERM
        with SearchLedger(plan.search_dir) as book:
            asked = [e for e in book.events() if e["kind"] in ("start", "stop")][-1]
            why = asked["detail"]["why"] if asked["kind"] == "stop" else "it was interrupted (Ctrl-C or SIGTERM)"
            book.add_event("stopped", {**ended, "why": why})
        raise SearchStopped(plan.search_dir, why, raise_budget=why.startswith("its budget"))
    with SearchLedger(plan.search_dir) as book:
        book.add_event("finished", ended)
    from rsi.views.search import search_status

    st = search_status(plan.search_dir)
    if best := st["best"]:
        who = f"trial {best['trial']}, cycle {best['cycle']}" if st["found_better"] else \
            "the config's own recipe: no trial beat it"
        console.print(f"search finished: best frontier {best['frontier']} ({who}) with recipe "
                      f"{json.dumps(best['recipe'])}")
    return plan.search_dir
