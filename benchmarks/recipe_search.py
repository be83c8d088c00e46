"""Does searching the recipe pay? The figures issue #23 asks for, per config.

For each config (default: `default` and `vote`; the issue asks for two tasks), with the space below
(`vote` adds its labelling keys):

1. **baseline**: the config's own recipe as one run: its final frontier and the CPU hours it took;
2. **search**: `rsi search` with `--trials` (>= 4) on the same total CPU as the baseline (its root,
   calibration and every trial counted): the best recipe found, the frontier it reached, and where
   the slots' time went while Tune ran (`tune_figures`): Tune's own overhead, the rounds' waits;
3. **re-run**: the best recipe alone from scratch with a fresh seed (`seed + 1`), to see that it holds:
   the CPU hours it took to reach the baseline's final frontier (a cycle at a time past the config's
   cycles, up to the baseline's compute), and the frontier it ended at. Two ratios to the baseline's
   CPU to its frontier: `compute_ratio` (the re-run alone: what the found recipe costs next time) and
   `compute_ratio_with_search` (the search's CPU added: what finding it cost, about 1 + the first
   when the search spent the baseline's compute).

Target: the re-run reaches the baseline's frontier with <= 60 % of its compute (or a higher frontier
at equal compute); Tune's overhead <= 10 % of the search's wall time. A search that finds nothing
better is a result too: the figures say so. The last line is JSON.

    .venv/bin/python benchmarks/recipe_search.py [--configs quick addition] [--space FILE] [--trials 4]
                                                 [--set [CONFIG:]KEY=VALUE] [--out runs/bench-search]

Every run is at one thread (OMP_NUM_THREADS=1 unless set), as the search's one-CPU trials are, so that CPU
hours mean the same work in the baseline, the search and the re-run.

Measured on 2 cores (4 trials, PBT, budget factor 1; the re-run goes on past the config's cycles, a
cycle at a time, until it reaches the baseline's frontier or spends the baseline's compute):
- default: baseline frontier 35 in 0.362 CPU h (4, 7, 11, 18, 28, 35).
  - Fourth search (2026-12-05, rounds longest first): search 0.396 CPU h (its last stage overshot
    the budget by 9 %), best lr 5.3e-4, 100 steps, 4 samples, temperature 1.2, width 2; re-run with
    seed 1: 4, 7, 11, 16, 20, 27, 33, 38, past 35 after 0.205 CPU h: 57 % of the baseline's compute
    (166 % with the search's own 0.396 CPU h: searching pays once the recipe is used three times).
    Slots' time: reported cycles 72 %, cycles the budget cut 14 %, Tune's own (start/stop,
    in-iteration copies) 4.9 %, round waits 9.2 %.
  - Earlier searches: re-runs past 35 after 46 % and 97 % of the baseline's compute, and after 0.289
    CPU h (80 %) in a search where Ray held one of the two CPUs outside Tune's placement groups
    (round waits 43 %).
- vote (its labelling keys searched too, VOTE_SPACE): baseline 4, 6, 7, 7, 7, 7 in 0.241 CPU h (7
  first at 0.116). Search 0.243 CPU h, best frontier 6 (threshold 0.90, 5 samples, width 2, 100
  steps); re-run 4, 4, 6, 6, 6, 6, 7: 7 after 0.115 CPU h, as the baseline: nothing better found.
  Tune's own 7.8 %, round waits 15 % (a short search: 8 cycles).
- quick with loop.cycles=10 (too small to judge): the baseline reached the ceiling at cycle 5 for
  0.020 CPU h, one cycle per trial; the best re-run cost 1.88x: nothing better found.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # every run at one thread: CPU hours compare across baseline and trials
import torch
from rich.console import Console

from rsi import resolve
from rsi.loop import start
from rsi.search.driver import SearchPlan, SearchStopped, run_search
from rsi.search.record import SearchLedger
from rsi.search.space import load_space
from rsi.views.search import search_status
from rsi.views.status import status

SPACE = """\
train.lr: {loguniform: [3.0e-4, 3.0e-3]}
train.steps: {choice: [100, 150, 200, 300, 400]}
generate.samples_per_problem: {choice: [2, 4, 6]}
generate.temperature: {uniform: [0.6, 1.2]}
curriculum.width: {choice: [1, 2, 3]}
"""
# vote labels by agreement among samples: its threshold, how many samples and how far past the frontier
# it proposes (the keys the config's header says were set by hand) join the training recipe
VOTE_SPACE = """\
label.vote_threshold: {uniform: [0.6, 1.0]}
generate.samples_per_problem: {choice: [3, 5, 7]}
generate.temperature: {uniform: [0.7, 1.3]}
curriculum.width: {choice: [1, 2, 3]}
train.steps: {choice: [100, 200, 400]}
train.lr: {loguniform: [3.0e-4, 3.0e-3]}
"""
SPACES = {"vote": VOTE_SPACE}


def _run(cfg, run_dir: Path, console: Console) -> dict:
    t0, ran = time.perf_counter(), not (run_dir / "champion").is_file()  # a finished run is read, not rerun
    if ran:
        start(cfg, run_dir, console)
    st = status(run_dir)
    return {"frontier": st["frontier"], "cpu_h": st["cost"]["cpu_s"] / 3600,
            "wall_min": (time.perf_counter() - t0) / 60 if ran else None, "frontier_by_cycle": st["frontier_by_cycle"],
            "cpu_h_by_cycle": {c: round(s / 3600, 4) for c, s in st["cpu_s_by_cycle"].items()}}


def _cpu_to_reach(run: dict, target: int) -> float | None:
    for c in sorted(run["frontier_by_cycle"], key=int):
        if (run["frontier_by_cycle"][c] or 0) >= target:
            return run["cpu_h_by_cycle"][c]
    return None


def _ts(at: str) -> float:
    return datetime.fromisoformat(at).timestamp()


def tune_figures(search_dir: Path, trials: int) -> dict:
    """PBT's exploits, and where the slots' time went from Tune's start to its end (the root's base model
    and the calibration cycle come before Tune and are not counted), in core-seconds:
    `cycles`, inside the cycles the trials reported (the search ledger); `cut_by_stop`, stages of cycles
    the stop cut (each trial's run ledger; recorded there, finished on resume); `start_stop`, Tune before
    the first cycle and after the last stage; `in_iterations`, inside a trial's iteration but outside its
    cycle (the fork or exploit copy, the snapshot, the checkpoint, the report: from Tune's
    `tune/*/result.json`, which under actor reuse misses some iterations, so a lower bound);
    `idle_between`, the rest: slots running nothing between cycles (synchronous PBT's rounds waiting
    for their slowest trial, an actor started for a round).

    `tune_overhead` is Tune's own share (start_stop + in_iterations) of the slots' time; `round_waits`
    idle_between's; `outside_cycles` everything but the reported cycles (this benchmark's earlier
    measure)."""
    from rsi.ledger import Ledger
    from rsi.run.rundir import LEDGER
    from rsi.search.trial import TRIALS, segments

    with SearchLedger(search_dir, readonly=True) as book:
        rows, lineage = book.iterations(), book.lineage()
        ended = [e for e in book.events() if e["kind"] in ("finished", "stopped")  # by its end or its budget
                 and not e["detail"].get("refused")][-1]  # (not a resume refused before Tune started)
    end, tune_wall = _ts(ended["at"]), ended["detail"]["wall_s"]
    begin, slots = end - tune_wall, min(trials, os.cpu_count() or 1)
    cycles = [(_ts(r["at"]) - r["cycle_wall_s"], _ts(r["at"])) for r in rows]
    reported: dict[str, int] = {}
    for r in rows:
        reported[r["trial"]] = max(reported.get(r["trial"], 0), r["cycle"])
    cut = []
    for home in sorted((search_dir / TRIALS).iterdir()):
        with Ledger(segments(home)[-1] / LEDGER, readonly=True) as led:
            cut += [(_ts(s["finished_at"]) - s["wall_s"], _ts(s["finished_at"])) for s in led.costs()
                    if s["cycle"] > reported.get(home.name, 0) and _ts(s["finished_at"]) >= begin]
    spans = cycles + cut
    first, last = min(a for a, _ in spans), max(b for _, b in spans)
    in_iterations = sum(r["time_this_iter_s"] - r["cycle_wall_s"] for f in (search_dir / "tune").glob("*/result.json")
                        for r in map(json.loads, f.read_text().splitlines()))
    split = {"cycles": sum(b - a for a, b in cycles), "cut_by_stop": sum(b - a for a, b in cut),
             "start_stop": slots * (max(0.0, first - begin) + max(0.0, end - last)), "in_iterations": in_iterations}
    split["idle_between"] = max(0.0, slots * tune_wall - sum(split.values()))
    whole = slots * tune_wall
    return {"tune_wall_min": tune_wall / 60, "exploits": sum(x["from_trial"] != "root" for x in lineage),
            "tune_overhead": (split["start_stop"] + split["in_iterations"]) / whole,
            "round_waits": split["idle_between"] / whole, "outside_cycles": 1 - split["cycles"] / whole,
            "core_s": {k: round(v, 1) for k, v in split.items()}}


def _run_until(cfg, run_dir: Path, target: int, max_cpu_h: float, console: Console) -> dict:
    """`cfg` as one run; then, while it is below `target` and has spent less than `max_cpu_h`, one cycle
    more at a time (at most as many again as it had). Returns the run's figures, as `_run`."""
    from rsi.loop import resume

    run = _run(cfg, run_dir, console)
    cycles = cfg.loop.cycles
    while run["frontier"] < target and run["cpu_h"] < max_cpu_h and cycles < 2 * cfg.loop.cycles:
        cycles += 1
        resume(run_dir, console, [f"loop.cycles={cycles}"])
        run = _run(cfg, run_dir, console)
    return run


def one(config: str, space_file: Path, trials: int, out: Path, console: Console, overrides: list[str],
        budget_factor: float = 1.0) -> dict:
    cfg = resolve.load(config, overrides)
    baseline = _run(cfg, out / config / "baseline", console)
    plan = SearchPlan(cfg, load_space(space_file, cfg), out / config / "search", trials, cfg.loop.cycles, "pbt",
                      baseline["cpu_h"] * budget_factor)
    t0 = time.perf_counter()
    try:
        run_search(plan, console)
    except SearchStopped as e:  # the budget: the search is compared on the baseline's compute
        console.print(str(e))
    search_wall = time.perf_counter() - t0
    st = search_status(plan.search_dir)
    best, tune = st["best"], tune_figures(plan.search_dir, trials)
    rerun_cfg = resolve.load(config, [*overrides, *load_space(space_file, cfg).overrides(best["recipe"]),
                                      f"seed={cfg.seed + 1}"])
    rerun = _run_until(rerun_cfg, out / config / "rerun", baseline["frontier"], baseline["cpu_h"], console)
    reach = _cpu_to_reach(rerun, baseline["frontier"])
    baseline_reach = _cpu_to_reach(baseline, baseline["frontier"])  # a baseline that stalls is not charged for it
    return {
        "baseline": {**{k: baseline[k] for k in ("frontier", "cpu_h", "wall_min")}, "cpu_h_to_frontier": baseline_reach,
                     "frontier_by_cycle": baseline["frontier_by_cycle"]},
        "search": {"found_better": st["found_better"], "best_frontier": best["frontier"], "best_recipe": best["recipe"],
                   "cpu_h": st["cpu_hours"],
                   "wall_min": search_wall / 60, "trials": st["trials"], "best_lineage": st["lineage"],
                   **tune},
        "rerun": {"frontier": rerun["frontier"], "cpu_h": rerun["cpu_h"], "cpu_h_to_baseline_frontier": reach,
                  "frontier_by_cycle": rerun["frontier_by_cycle"],
                  "compute_ratio": None if reach is None else reach / baseline_reach,
                  # what finding the recipe cost counts too: the search's CPU and the re-run's, against the baseline's
                  "compute_ratio_with_search": None if reach is None else (st["cpu_hours"] + reach) / baseline_reach},
    }


def _overrides_for(config: str, overrides: list[str]) -> list[str]:
    """`a.b=c` applies to every config, `CONFIG:a.b=c` to that config only."""
    mine = []
    for o in overrides:
        head, sep, rest = o.partition(":")
        if sep and "=" not in head:
            if head == config:
                mine.append(rest)
        else:
            mine.append(o)
    return mine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["default", "vote"])
    ap.add_argument("--space", type=Path, default=None, help="the search space for every config (default: the above)")
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--budget-factor", type=float, default=1.0,
                    help="the search's CPU budget as a multiple of the baseline's (1: the issue's same compute)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="a.b=c for every config, or CONFIG:a.b=c for one (e.g. quick:loop.cycles=10)")
    ap.add_argument("--out", type=Path, default=Path("runs") / f"bench-search-{time.strftime('%Y%m%d-%H%M%S')}")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True, soft_wrap=True)
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    results = {}
    for c in args.configs:
        space = args.space or args.out / f"space-{c}.yaml"
        if args.space is None:
            space.write_text(SPACES.get(c, SPACE))
        results[c] = one(c, space, args.trials, args.out, console, _overrides_for(c, args.overrides),
                         args.budget_factor)
    for c, r in results.items():
        console.print(f"{c}: baseline frontier {r['baseline']['frontier']} in {r['baseline']['cpu_h']:.3f} CPU h; "
                      f"search best {r['search']['best_frontier']}; re-run {r['rerun']['frontier']} "
                      f"(baseline's frontier after {r['rerun']['cpu_h_to_baseline_frontier']} CPU h; ratio "
                      f"{r['rerun']['compute_ratio']}, {r['rerun']['compute_ratio_with_search']} with the search)")
    print(json.dumps({"trials": args.trials, "budget_factor": args.budget_factor, "overrides": args.overrides,
                      "threads": int(os.environ["OMP_NUM_THREADS"]),
                      "results": results}, default=str))


if __name__ == "__main__":
    main()
