"""Does the self-play proposer learn? Prints valid and learnable proposals before and after training.

Runs one cycle of a self-play config (default `selfplay`) twice from the same base model: with the
proposer trained by GRPO on learnability, and frozen (`propose.updates=0`; SFT and the solver's
GRPO are the same in both). Then each arm's trained candidate and the base model write fresh
proposals (`--n` per level, new sampling seed) that the executor checks, and one fixed solver (the
base model) answers the problems they pose, `--samples` times each. Per proposer it prints the
share of valid proposals, the share that are learnable (solved sometimes, not always) and the mean
learnability reward, so the proposer's own update is separated from what SFT and the solver's
GRPO did to the shared weights. The last line is JSON.

    .venv/bin/python benchmarks/selfplay.py [CONFIG] [--set a.b=c ...] [--n 256] [--out runs/bench-selfplay]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console

from rsi.config import load_config
from rsi.engine.checkpoint import load_checkpoint
from rsi.engine.generate import generate
from rsi.loop import start
from rsi.records import Problem
from rsi.sandbox.pool import shared
from rsi.tasks import get_task
from rsi.tasks.code_io import pose
from rsi.tasks.selfplay import check, learnability, proposer_prompt


def judge(cfg, proposer_dir: Path, solver, levels: list[int], n: int, samples: int, seed: int) -> dict:
    """Valid share, learnable share and mean learnability of `n` fresh proposals per level."""
    task = get_task(cfg.task)
    model, tok = load_checkpoint(proposer_dir)
    solver_model, solver_tok = solver
    valid = learnable = 0
    reward = 0.0
    for d in levels:
        outs = generate(model, tok, [proposer_prompt(cfg.propose.prompt, d)], task.max_answer_chars(d) + 1, n=n,
                        temperature=cfg.propose.temperature, seed=seed + d,
                        prefix=cfg.propose.response_prefix)[0]
        checked = [c for c in check([o.text for o in outs], set(), set(), task.alphabet, shared()) if c.valid]
        valid += len(checked)
        posed = [[Problem(task.name, d, "train", i, *pose(m, c.source, c.x, c.y)) for m in task.proposable_modes()]
                 for i, c in enumerate(checked)]
        flat = [p for ps in posed for p in ps]
        answers = generate(solver_model, solver_tok, [p.prompt for p in flat], task.max_answer_chars(d) + 1,
                           n=samples, temperature=1.0, seed=seed)
        verdicts = iter(task.verify_many([(p, a.text) for p, alist in zip(flat, answers, strict=True) for a in alist]))
        for ps in posed:
            rate = sum(next(verdicts).correct for _ in ps for _ in range(samples)) / (len(ps) * samples)
            learnable += 0 < rate < 1
            reward += learnability(rate)
    total = n * len(levels)
    return {"valid": round(valid / total, 3), "learnable": round(learnable / total, 3),
            "reward": round(reward / total, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", default="selfplay")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--n", type=int, default=256, help="fresh proposals per level for each proposer")
    ap.add_argument("--samples", type=int, default=4, help="solver answers per posed problem")
    ap.add_argument("--out", type=Path, default=Path("runs") / f"bench-selfplay-{time.strftime('%Y%m%d-%H%M%S')}")
    args = ap.parse_args()
    console = Console()
    runs = {}
    for arm, extra in (("trained", []), ("frozen", ["propose.updates=0"])):
        cfg = load_config(args.config, [*args.overrides, "loop.cycles=1", *extra])
        t0 = time.perf_counter()
        start(cfg, args.out / arm, console)
        runs[arm] = (cfg, time.perf_counter() - t0)
    cfg = runs["trained"][0]
    levels = list(range(cfg.seed_data.min_difficulty, cfg.seed_data.min_difficulty + cfg.curriculum.width))
    base_dir = args.out / "trained" / "models" / "cycle-0000"
    solver = load_checkpoint(base_dir)
    proposers = {"base (cycle 0)": base_dir, "after proposer GRPO": args.out / "trained" / "models" / "cycle-0001",
                 "frozen proposer": args.out / "frozen" / "models" / "cycle-0001"}
    result = {"config": cfg.name, "levels": levels, "n_per_level": args.n, "solver_samples": args.samples,
              "proposer_updates": cfg.propose.updates,
              "run_wall_min": {arm: round(w / 60, 2) for arm, (_, w) in runs.items()}}
    for name, path in proposers.items():
        result[name] = judge(cfg, path, solver, levels, args.n, args.samples, seed=12345)
        r = result[name]
        console.print(f"{name:>20}: valid {r['valid']:.1%}  learnable {r['learnable']:.1%}  "
                      f"mean learnability {r['reward']:.4f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
