"""How busy does a PBT search keep its CPU slots? A small search (4 trials on this machine's CPUs,
`quick` cut to seconds a cycle, a straggler recipe among them), with Tune's actor reuse on or off and
PBT's rounds started longest first (rsi's `LongestFirstPBT`) or in Tune's own order; prints each
cycle's span (from the search ledger) and, as the last line, JSON: the share of slot time between
the first cycle's start and the last one's end that no cycle used.

    .venv/bin/python benchmarks/tune_slots.py [--reuse-actors 1|0] [--order longest|tune] [--out DIR]

Measured on 2 cores (2026-12-05, cycles of 4-13 s), in Tune's order: reuse on, 18 % and 24 % idle in
two runs (wall 88 and 94 s); reuse off, 58 % idle (wall 123 s: every iteration starts a process).
Reuse on, side by side: longest first 21 % and 14 % idle (wall 77 and 74 s), Tune's order 38 % and
39 % (93 and 102 s). rsi search reuses actors and starts the longest first. (Asynchronous PBT, tried
too, copied a leader's checkpoint from an earlier cycle and ran the same cycle again, up to three
times in a row.)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import ray.tune as rt
from rich.console import Console

SPACE = "train.steps: {choice: [40, 200]}\ntrain.lr: {loguniform: [3.0e-4, 3.0e-3]}\n"
SMALL = ["base.steps=300", "propose.problems_per_difficulty=20", "eval.problems_per_difficulty=20",
         "eval.max_difficulty=6", "loop.max_difficulty=6"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reuse-actors", type=int, choices=(0, 1), default=1)
    ap.add_argument("--order", choices=("longest", "tune"), default="longest",
                    help="which paused trial a round starts first: the longest expected (rsi's) or Tune's own order")
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("runs") / f"bench-slots-{time.strftime('%Y%m%d-%H%M%S')}")
    args = ap.parse_args()
    tune_config = rt.TuneConfig
    rt.TuneConfig = lambda *a, **k: tune_config(*a, **{**k, "reuse_actors": bool(args.reuse_actors)})
    if args.order == "tune":
        from ray.tune.schedulers import PopulationBasedTraining

        from rsi.search.tuned import LongestFirstPBT
        LongestFirstPBT.choose_trial_to_run = PopulationBasedTraining.choose_trial_to_run

    from rsi import resolve
    from rsi.search.driver import SearchPlan, run_search
    from rsi.search.record import SearchLedger
    from rsi.search.space import load_space

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "space.yaml").write_text(SPACE)
    cfg = resolve.load("quick", SMALL)
    t0 = time.time()
    run_search(SearchPlan(cfg, load_space(args.out / "space.yaml", cfg), args.out / "search", args.trials, args.cycles,
                          "pbt"), Console(stderr=True, quiet=True))
    with SearchLedger(args.out / "search", readonly=True) as book:
        rows = book.iterations()
    spans = sorted((datetime.fromisoformat(r["at"]).timestamp() - r["cycle_wall_s"],
                    datetime.fromisoformat(r["at"]).timestamp(), r["trial"], r["cycle"]) for r in rows)
    first, last = spans[0][0], max(e for _, e, _, _ in spans)
    for s, e, trial, cycle in spans:
        print(f"{s - first:6.1f} {e - first:6.1f}  {trial} cycle {cycle}")
    slots = min(args.trials, os.cpu_count() or 1)
    busy = sum(e - s for s, e, _, _ in spans)
    print(json.dumps({"reuse_actors": bool(args.reuse_actors), "order": args.order, "slots": slots, "cycles": len(rows),
                      "span_s": round(last - first, 1), "idle_share": round(1 - busy / (slots * (last - first)), 3),
                      "wall_s": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
