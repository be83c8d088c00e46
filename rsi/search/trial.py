"""One trial of a recipe search: a normal rsi run, driven one cycle per Tune iteration.

A trial's runs live in `SEARCH/trials/<trial id>/seg-<k>`: `seg-0` is forked from the search's
root run after its cycle 0 (every trial starts from the same base model, trained once), and each
exploit starts a new segment forked from the better trial's snapshot, so no run is ever changed
behind its own ledger's back. Each iteration resumes the run for one more cycle with the trial's
recipe (recorded as a `recipe` event when it differs from what the run last ran with), then reports
its figures and a snapshot of the run (`rsi.search.fork.snapshot`: ledger, champion, config) as
Tune's checkpoint, which PBT hands to a worse trial when it exploits.

When a killed search resumes, each trial goes on from its own checkpoint and its run's ledger: a
cycle the kill interrupted is finished first (with the recipe it started with), and a cycle that
ended after the trial's last report is reported before another one runs, so every cycle is in the
search ledger once.

The score is the frontier with the held-out accuracy just above it as its fraction, gained since the
base model, per CPU hour the run has spent since then: `(frontier + acc(frontier+1) - base) / cpu_h`.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from rsi.ledger import Ledger
from rsi.run.context import champion, champion_results, gates
from rsi.run.curriculum import frontier
from rsi.run.rundir import LEDGER
from rsi.search.fork import boundary, fork, snapshot
from rsi.search.space import Space
from rsi.stages import between_cycles

TRIALS = "trials"
ROOT = "root"
CALIBRATION = "calibration"  # the run that measures one cycle of the config's own recipe
META = "trial.json"


def figures(run_dir: Path) -> dict[str, Any]:
    """A run's standing at its cycle boundary: cycle, frontier, accuracy just above it, its score's
    numerator (frontier + that accuracy), cumulative CPU and wall seconds, the last gate's decision."""
    with Ledger(Path(run_dir) / LEDGER, create=False, readonly=True) as ledger:
        cfg = ledger.run_info()["config"]
        cycle, champ = boundary(ledger), champion(ledger)
        acc = {d: r.accuracy for d, r in champion_results(ledger, champ).items()}
        f = frontier(acc, cfg["curriculum"]["threshold"], cfg["eval"]["min_difficulty"])
        totals, last = ledger.totals(), [g for g in gates(ledger) if g["cycle"] == cycle]
    return {"cycle": cycle, "frontier": f, "acc_above": acc.get(f + 1, 0.0), "standing": f + acc.get(f + 1, 0.0),
            "cpu_s": totals["cpu_s"], "wall_s": totals["wall_s"], "champion": champ,
            "promoted": bool(last and last[0]["promote"])}


def own_cpu_s(run_dir: Path) -> float:
    """CPU seconds a trial's segment spent itself: its completed stages after the cycle it was forked at
    (before that its ledger holds its source's history). 0 while the fork is being written."""
    if not (Path(run_dir) / LEDGER).is_file():
        return 0.0
    with Ledger(Path(run_dir) / LEDGER, create=False, readonly=True) as ledger:
        forks = ledger.events("fork")
        return sum(r["cpu_s"] for r in ledger.costs() if forks and r["cycle"] > forks[-1]["detail"]["cycle"])


def search_cpu_s(search_dir: Path) -> float:
    """What a search has spent, from its runs' own ledgers: the root's base model and the calibration
    cycle, and every completed stage of every trial (a cycle the search stopped midway counts the stages
    it completed; the stage in progress rolled back, as in a killed run)."""
    search_dir = Path(search_dir)
    first = next((d for d in (search_dir / CALIBRATION, search_dir / ROOT) if (d / LEDGER).is_file()), None)
    spent = 0.0
    if first is not None:  # the calibration's ledger holds the root's stages too
        with Ledger(first / LEDGER, create=False, readonly=True) as ledger:
            spent = ledger.totals()["cpu_s"]
    return spent + sum(own_cpu_s(seg) for home in sorted((search_dir / TRIALS).glob("*")) for seg in segments(home))


def budget_spent(search_dir: Path, budget_cpu_hours: float | None) -> str | None:
    """Why the search must stop for its budget (what it spent, of what), or None."""
    if budget_cpu_hours is None or (spent := search_cpu_s(search_dir)) < budget_cpu_hours * 3600:
        return None
    return f"its budget is spent ({spent / 3600:.3f} of {budget_cpu_hours:g} CPU h)"


def _inside_a_cycle(run_dir: Path) -> bool:
    with Ledger(run_dir / LEDGER, create=False, readonly=True) as ledger:
        return not between_cycles(ledger.completed_stages())


def segments(home: Path) -> list[Path]:
    return sorted(home.glob("seg-*"), key=lambda p: int(p.name[4:])) if home.is_dir() else []


def run_trial(config: dict, search_dir: str, space: Space, base: dict, cycles: int, quiet: bool = True) -> None:
    """Tune's function trainable (see the module docstring). `base`: the root's figures at cycle 0;
    the trial ends when its run has `cycles` cycles (not one more while Tune stops it)."""
    from ray import tune

    from rsi.loop import resume

    search_dir = Path(search_dir)
    trial = tune.get_context().get_trial_id()
    home = search_dir / TRIALS / trial
    recipe = {d.key: config[d.key] for d in space.dimensions}
    run_dir, forked, last = _place(search_dir, home, trial, tune.get_checkpoint(), base)
    console = Console(quiet=quiet, stderr=True)
    if _inside_a_cycle(run_dir):  # the search was killed while this trial ran a cycle: finish it first
        resume(run_dir, console, recipe=space.overrides(recipe))
    while True:
        before = figures(run_dir)
        t0 = time.perf_counter()
        if last and before["cycle"] > last["cycle"]:  # killed after a cycle, before its report: report it now
            before, now = last, before
        elif before["cycle"] >= cycles:
            return
        else:
            resume(run_dir, console, [f"loop.cycles={before['cycle'] + 1}"], recipe=space.overrides(recipe))
            now = figures(run_dir)
        gained = now["standing"] - base["standing"]
        spent_h = max(now["cpu_s"] - base["cpu_s"], 1.0) / 3600
        report = {**{k: now[k] for k in ("cycle", "frontier", "acc_above", "champion", "promoted")},
                  "score": gained / spent_h, "run_cpu_s": now["cpu_s"], "run_wall_s": now["wall_s"],
                  "cycle_cpu_s": now["cpu_s"] - before["cpu_s"],
                  "cycle_wall_s": max(time.perf_counter() - t0, now["wall_s"] - before["wall_s"]),
                  "run_dir": str(run_dir), "recipe": json.dumps(recipe), "forked_from": json.dumps(forked)}
        forked, last = None, None
        with tempfile.TemporaryDirectory(prefix="rsi-trial-") as tmp:
            snap = snapshot(run_dir, Path(tmp) / "run")
            at = {k: now[k] for k in ("cycle", "cpu_s", "wall_s")}
            (Path(tmp) / META).write_text(json.dumps({"trial": trial, "segment": run_dir.name, **snap, "at": at}))
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(tmp))


def _place(search_dir: Path, home: Path, trial: str, checkpoint, base: dict) -> tuple[Path, dict | None, dict | None]:
    """The run directory this trial goes on with, what it was forked from (after an exploit or at its
    start), and where its own last report stood (when it goes on from its own checkpoint)."""
    segs = segments(home)
    if checkpoint is None:
        if segs:  # restarted without a checkpoint (a search resumed before its first report): go on from the root's
            with Ledger(segs[-1] / LEDGER, create=False, readonly=True) as ledger:
                return segs[-1], ledger.events("fork")[-1]["detail"], base
        with tempfile.TemporaryDirectory(prefix="rsi-root-") as tmp:
            origin = {"trial": ROOT, "segment": ROOT, **snapshot(search_dir / ROOT, Path(tmp) / "run")}
            fork(Path(tmp) / "run", home / "seg-0", origin)
        return home / "seg-0", origin, None
    with checkpoint.as_directory() as d:
        meta = json.loads((Path(d) / META).read_text())
        if meta["trial"] == trial and segs and meta["segment"] == segs[-1].name:
            return segs[-1], None, meta["at"]  # its own state: the run directory holds it (and maybe a cycle more)
        target = home / f"seg-{int(segs[-1].name[4:]) + 1 if segs else 0}"
        origin = {k: meta[k] for k in ("trial", "segment", "cycle", "champion", "weights_sha256")}
        fork(Path(d) / "run", target, origin)
    return target, origin, None

