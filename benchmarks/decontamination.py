"""How much does decontamination drop, and does it catch near-copies? Per task, against the held-out ladder.

For each task, the held-out set is `--eval` problems per difficulty up to `--max` (as `eval.*` does),
indexed with the default `monitors.ngram` and `monitors.ngram_overlap`. Prints, per difficulty, how
many of 200 fresh train problems (the items a cycle would propose) are dropped as exact or n-gram
overlaps, and how many held-out prompts with one digit changed (near-copies, not exact ones) are
caught. The last line is JSON.

    .venv/bin/python benchmarks/decontamination.py [--tasks sort addition word_arithmetic code_io] [--eval 200]
"""

from __future__ import annotations

import argparse
import json
import random
import time

from rsi.config import MonitorsConfig
from rsi.monitors import HeldoutIndex
from rsi.tasks import get_task, problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["sort", "addition", "word_arithmetic", "code_io"])
    ap.add_argument("--eval", type=int, default=200)
    ap.add_argument("--max", type=int, default=8)
    args = ap.parse_args()
    m, out = MonitorsConfig(), {}
    for name in args.tasks:
        task = get_task(name)
        top = min(args.max, task.max_difficulty)
        held = [p.prompt for d in range(task.min_difficulty, top + 1) for p in problems(task, d, "heldout", args.eval)]
        t0 = time.perf_counter()
        index = HeldoutIndex(held, m.ngram, m.ngram_overlap)
        dropped = {}
        for d in range(task.min_difficulty, top + 1):
            hits = [index.hit(p.prompt) for p in problems(task, d, "train", 200, start=500_000_000)]
            dropped[d] = {"exact": hits.count("exact"), "ngram": hits.count("ngram")}
        rng, near, caught = random.Random(0), 0, 0
        for text in held:
            digits = [i for i, ch in enumerate(text) if ch.isdigit()]
            if not digits:
                continue
            i = rng.choice(digits)
            near += 1
            caught += index.hit(text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1:]) is not None
        seconds = time.perf_counter() - t0
        print(f"{name}: held-out {len(held)} prompts; dropped of 200 fresh problems per difficulty: "
              + ", ".join(f"d{d} {v['exact']}+{v['ngram']}" for d, v in dropped.items())
              + f" (exact+ngram); one-digit near-copies caught {caught}/{near}; {seconds:.1f} s")
        out[name] = {"dropped": dropped, "near_copies": [caught, near]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
