"""Fault injection at 50+ points: SIGKILL a real run inside its stages, resume, compare with an uninterrupted run.

Runs CONFIG (default `quick`) once uninterrupted as the reference, then `--chains` runs of the same
config, each killed with SIGKILL once per session in every other stage (even-numbered stages in
even chains, odd in odd ones) at a random time into the stage, and resumed until it ends; then two
more chains killed inside the commit of every stage (even, odd), after all its rows are written
(`rsi.run.faults.kill_chain`). Each chain's final ledger and champion are compared with the
reference's (`rsi.views.fingerprint`: every table's rows bar times, the champion's weights). Prints
every kill, the kills per stage, and per chain whether it ended equal; the last line is JSON.

    .venv/bin/python benchmarks/fault_injection.py [CONFIG] [--chains 8] [--seed 0] [--out runs/bench-faults]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

from rsi.run.faults import RSI, kill_chain, reference_stages
from rsi.views.fingerprint import differences, fingerprint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", default="quick")
    ap.add_argument("--chains", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-faults"))
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    reference = args.out / "reference"
    t0 = time.perf_counter()
    subprocess.run([*RSI, "run", args.config, "--run-dir", str(reference)], check=True, stdout=subprocess.DEVNULL)
    stages = reference_stages(reference)
    expected = fingerprint(reference)
    print(f"reference: {len(stages)} stages in {time.perf_counter() - t0:.0f} s")
    rng, kills, equal = random.Random(args.seed), [], []
    plans = [("time", chain % 2) for chain in range(args.chains)] + [("commit", 0), ("commit", 1)]
    for chain, (how, parity) in enumerate(plans):
        run = args.out / f"chain-{chain}"
        got = kill_chain([args.config], run, stages, stages[parity::2], rng, how=how)
        diff = differences(fingerprint(run), expected)
        equal.append(not diff)
        kills += got
        for k in got:
            where = "in its commit" if how == "commit" else f"{k.after_s:.2f} s after it could start"
            print(f"chain {chain}: killed in cycle {k.cycle} {k.stage} {where} ({k.stages_done} stages committed)")
        print(f"chain {chain}: {len(got)} kills, final run {'EQUALS' if not diff else 'DIFFERS FROM'} the reference"
              + ("" if not diff else f": {diff}"), flush=True)
    per_stage = Counter(k.stage for k in kills)
    print("kills per stage: " + ", ".join(f"{s} {n}" for s, n in sorted(per_stage.items())))
    print(f"{len(kills)} kills in {len(plans)} chains; {sum(equal)}/{len(plans)} chains ended equal to the "
          f"uninterrupted run ({time.perf_counter() - t0:.0f} s)")
    print(json.dumps({"kills": len(kills), "chains": len(plans), "equal": sum(equal), "per_stage": per_stage}))


if __name__ == "__main__":
    main()
