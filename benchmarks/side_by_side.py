"""Do two rsi runs on one machine share it, or starve each other? Prints the figure issue #34 asks for.

Runs `rsi run CONFIG` (default `quick`, one cycle) alone, then two of the same side by side (two
processes started together), each a fresh run directory, and prints each one's wall seconds and
CPU seconds (from its ledger), and the ratio of the slower side-by-side run's wall time to the
lone run's. Sharing fairly, two runs on the same cores take about 2x; two OpenMP pools that
busy-wait for each other took over 10x (the issue's base stage: 405 s against about 15 s).
`--env K=V` sets a variable for every run (say `OMP_WAIT_POLICY=ACTIVE`, to compare with rsi's
default). The last line is JSON. Time it with nothing else running.

    .venv/bin/python benchmarks/side_by_side.py [--config quick] [--set loop.cycles=1] [--env K=V] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rsi.ledger import Ledger

RSI = [sys.executable, "-m", "rsi.cli"]


def cpu_s(run_dir: Path) -> float:
    with Ledger(run_dir / "ledger.sqlite", readonly=True) as ledger:
        return round(ledger.totals()["cpu_s"], 1)


def runs(n: int, config: str, sets: list[str], env: dict, where: Path) -> list[dict]:
    """`n` runs started together; each one's wall and CPU seconds."""
    args = [a for s in sets for a in ("--set", s)]
    dirs = [where / f"run-{time.monotonic_ns()}-{k}" for k in range(n)]
    t0 = time.perf_counter()
    procs = [subprocess.Popen([*RSI, "run", config, "--run-dir", str(d), *args], env=os.environ | env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for d in dirs]
    out = []
    for d, p in zip(dirs, procs, strict=True):
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"rsi run failed ({p.returncode}): {err[-2000:]}")
        out.append({"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": cpu_s(d)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="quick")
    ap.add_argument("--set", dest="sets", action="append", default=None)
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    sets = ["loop.cycles=1"] if args.sets is None else args.sets
    env = dict(kv.split("=", 1) for kv in args.env)
    alone, pairs = [], []
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as tmp:
        for k in range(args.repeat):
            alone += runs(1, args.config, sets, env, Path(tmp))
            pairs.append(runs(2, args.config, sets, env, Path(tmp)))
            print(f"repeat {k + 1}: alone {alone[-1]}, side by side {pairs[-1]}", flush=True)
    lone = statistics.median(r["wall_s"] for r in alone)
    slower = statistics.median(max(r["wall_s"] for r in p) for p in pairs)
    print(json.dumps({"config": args.config, "sets": sets, "env": env, "cores": os.cpu_count(),
                      "alone_wall_s": lone, "alone_cpu_s": statistics.median(r["cpu_s"] for r in alone),
                      "side_by_side": pairs, "slower_over_alone": round(slower / lone, 2)}))


if __name__ == "__main__":
    main()
