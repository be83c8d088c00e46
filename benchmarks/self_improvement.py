"""Does the loop make the model better than its labels? Prints the figures issue #2 asks for.

Runs a config (default: the built-in `default`) as a full loop, then an ablation: the same model,
seed and number of training sequences spent on the labelled range only (`loop.cycles=0`, all
steps in the base). Prints both frontiers, held-out accuracy at twice the labelled range, mean
held-out accuracy over the ladder, wall time, training sequences consumed per +1 difficulty of
frontier, and every monitor alert the loop raised (an honest run should raise none). The last
line is JSON.

    .venv/bin/python benchmarks/self_improvement.py [CONFIG] [--set a.b=c ...] [--out runs/bench]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console

from rsi.config import load_config
from rsi.ledger import Ledger
from rsi.loop import start
from rsi.views.status import status


def run(cfg, run_dir: Path, console: Console) -> tuple[dict, float]:
    t0 = time.perf_counter()
    start(cfg, run_dir, console)
    return status(run_dir), time.perf_counter() - t0


def alerts(run_dir: Path) -> list[str]:
    with Ledger(run_dir / "ledger.sqlite", create=False) as ledger:
        return [f"cycle {r['cycle']} {r['monitor']}: {r['message']}" for r in ledger.readings() if r["alert"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--out", type=Path, default=Path("runs") / f"bench-{time.strftime('%Y%m%d-%H%M%S')}")
    ap.add_argument("--skip-ablation", action="store_true")
    args = ap.parse_args()
    console = Console()

    cfg = load_config(args.config, args.overrides)
    labelled = cfg.seed_data.max_difficulty
    loop_st, loop_wall = run(cfg, args.out / "loop", console)
    sequences = loop_st["cost"]["train_sequences"]
    result = {
        "config": cfg.name, "labelled_max_difficulty": labelled,
        "loop_frontier": loop_st["frontier"], "loop_frontier_at_cycle0": loop_st["frontier_at_cycle0"],
        "loop_wall_min": round(loop_wall / 60, 2), "loop_cpu_h": round(loop_st["cost"]["cpu_s"] / 3600, 3),
        "loop_train_sequences": sequences,
        "loop_acc_at_2x_labelled": loop_st["eval"].get(str(2 * labelled)),
        "cycles": loop_st["cycles_completed"],
        "frontier_by_cycle": loop_st["frontier_by_cycle"],
        "kept_fraction_by_cycle": {k: round(v, 3) for k, v in loop_st["kept_fraction"].items() if v is not None},
        "label_accuracy_by_cycle": {k: round(v, 4) for k, v in loop_st["label_accuracy"].items() if v is not None},
        "loop_mean_accuracy": round(loop_st["mean_accuracy"], 4),
        "gates_promoted": sum(g["promote"] for g in loop_st["gates"]), "gates": len(loop_st["gates"]),
        "monitor_alerts": alerts(args.out / "loop"),
    }
    gained = loop_st["frontier"] - loop_st["frontier_at_cycle0"]
    loop_seqs = sequences - cfg.base.steps * cfg.base.batch_size
    result["train_sequences_per_difficulty"] = round(loop_seqs / gained) if gained > 0 else None
    if not args.skip_ablation:
        ablation_steps = sequences // cfg.base.batch_size
        abl = load_config(args.config, [*args.overrides, "loop.cycles=0", f"base.steps={ablation_steps}"])
        abl_st, abl_wall = run(abl, args.out / "ablation", console)
        result.update({"ablation_frontier": abl_st["frontier"],
                       "ablation_train_sequences": abl_st["cost"]["train_sequences"],
                       "ablation_acc_at_2x_labelled": abl_st["eval"].get(str(2 * labelled)),
                       "ablation_mean_accuracy": round(abl_st["mean_accuracy"], 4),
                       "ablation_wall_min": round(abl_wall / 60, 2)})
        result["loop_minus_ablation"] = result["loop_frontier"] - result["ablation_frontier"]
        result["claim_holds"] = bool(result["loop_minus_ablation"] >= labelled
                                     and result["loop_frontier"] >= 2 * labelled)
    for k, v in result.items():
        console.print(f"{k:>32}: {v}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
