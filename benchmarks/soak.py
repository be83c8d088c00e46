"""Soak: many `quick` cycles in one process; does resident memory or the number of open files grow?

Runs CONFIG (default `quick`) for `--cycles` cycles (default 200) in this process (`rsi.loop.start`,
with `loop.max_difficulty` raised so the run does not end at the frontier cap), while a thread
samples this process's resident memory (VmRSS) and open file descriptors every `--every` seconds
and the number of finished cycles from the ledger. Prints a line every 20 cycles and the growth
from the end of cycle `--warmup` (allocator and import warm-up) to the last cycle seen
finished while the run was live, then the figures after it returned; the last line is JSON.

    .venv/bin/python benchmarks/soak.py [CONFIG] [--cycles 200] [--warmup 10] [--out runs/bench-soak]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

from rich.console import Console

from rsi.config import load_config
from rsi.loop import start


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def cycles_done(run_dir: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{run_dir / 'ledger.sqlite'}?mode=ro", uri=True)
        try:
            return con.execute("SELECT count(*) FROM stages WHERE stage = 'gate'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", default="quick")
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--every", type=float, default=0.25)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-soak"))
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    cfg = load_config(args.config, [f"loop.cycles={args.cycles}", "loop.max_difficulty=20"])
    at_cycle: dict[int, tuple[float, int]] = {}  # cycle -> (RSS MB, fds) when it was first seen finished
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(args.every):
            n = cycles_done(args.out)
            if n not in at_cycle:
                at_cycle[n] = (rss_mb(), open_fds())
                if n % 20 == 0 and n:
                    print(f"cycle {n}: RSS {at_cycle[n][0]:.0f} MB, {at_cycle[n][1]} open fds", flush=True)

    sampler = threading.Thread(target=sample, daemon=True)
    t0 = time.perf_counter()
    sampler.start()
    start(cfg, args.out, Console(quiet=True))
    stop.set()
    sampler.join()
    done = cycles_done(args.out)
    after = (rss_mb(), open_fds())  # the run has returned and closed its ledger
    at_cycle = at_cycle or {done: after}
    last = max(at_cycle)  # the last cycle the sampler saw finished while the run was live
    warm = min((c for c in at_cycle if c >= args.warmup), default=min(at_cycle))
    rss_growth = at_cycle[last][0] - at_cycle[warm][0]
    fd_growth = at_cycle[last][1] - at_cycle[warm][1]
    live_fds = [f for c, (_, f) in at_cycle.items() if c >= warm]
    print(f"{done} cycles in {time.perf_counter() - t0:.0f} s; from cycle {warm} to {last}: RSS "
          f"{at_cycle[warm][0]:.0f} -> {at_cycle[last][0]:.0f} MB ({rss_growth:+.1f} MB), open fds "
          f"{at_cycle[warm][1]} -> {at_cycle[last][1]} ({fd_growth:+d}, {min(live_fds)}-{max(live_fds)} between); "
          f"peak RSS {max(r for r, _ in at_cycle.values()):.0f} MB; after the run returned: RSS {after[0]:.0f} MB, "
          f"{after[1]} open fds")
    print(json.dumps({"cycles": done, "warm_cycle": warm, "last_cycle": last,
                      "rss_mb": [at_cycle[warm][0], at_cycle[last][0]], "rss_growth_mb": rss_growth,
                      "fds": [at_cycle[warm][1], at_cycle[last][1]], "fd_growth": fd_growth,
                      "fds_range": [min(live_fds), max(live_fds)], "after_run": {"rss_mb": after[0], "fds": after[1]}}))


if __name__ == "__main__":
    main()
