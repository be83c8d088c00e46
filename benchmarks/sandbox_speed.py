"""The sandbox's cost per execution, its throughput, and a long soak (issue #4).

1. Latency: each program runs in turn as a bare `/usr/bin/python3 -c PROGRAM` subprocess (same
   interpreter, stdin fed, output captured: what a user would otherwise do), forked from a warm bare
   `python3 -I -S` server with no isolation (`WarmFork`: the sandbox's own way of running a program,
   less the isolation, so `ratio_vs_warm_fork` is what the isolation itself costs), and in the
   sandbox (`Sandbox.run`, the full isolation chain); medians over --runs rounds and the ratios.
   Programs: `noop` (pure start-up cost, the worst case for a ratio), `code_io` (a small generated
   program of the kind the code tasks run), `compute` (about 50 ms of work).
2. Throughput: --jobs `code_io` executions through a 2-slot pool (`Sandbox.map`), executions/s;
   and the same with bare subprocesses on 2 threads.
3. Soak: --soak executions in a row through the pool; every 1,000 the host's resident memory
   and open descriptors, processes of the slots' uids besides their waiting servers, zombies,
   new entries in /tmp; at the end the cgroup directories left after the pool closes.

Each slot keeps an interpreter waiting inside its sandbox (`rsi.sandbox.server`) and forks it per
program, so a run pays neither bubblewrap's set-up nor Python's start-up; the pool starts them on
first use (warmed here before timing).

    .venv/bin/python benchmarks/sandbox_speed.py [--runs 40] [--jobs 400] [--soak 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rsi.sandbox import Job, Sandbox

PROGRAMS = {
    "noop": ("pass", ""),
    "code_io": ("def f(xs):\n    out = []\n    for x in xs:\n        if x % 3 == 0:\n            out.append(x * 2)\n"
                "        else:\n            out.append(x - 1)\n    return sorted(out)\n"
                "import sys\nprint(f(eval(sys.stdin.read())))\n", "[5, 9, 2, 12, 7]"),
    "compute": ("import sys\nn = int(sys.stdin.read())\nprint(sum(i * i % 7 for i in range(n)))\n", "600000"),
}


WARM_SERVER = r"""
import io, json, os, sys
for line in sys.stdin:
    job = json.loads(line)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(w, 1)
        sys.stdin = io.StringIO(job["stdin"])
        try:
            exec(compile(job["program"], "<program>", "exec"), {"__name__": "__main__"})
        finally:
            sys.stdout.flush()
            os._exit(0)
    os.close(w)
    out = b""
    while chunk := os.read(r, 1 << 16):
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    sys.stdout.write(json.dumps(out.decode()) + "\n")
    sys.stdout.flush()
"""


class WarmFork:
    """A bare `python3 -I -S` that waits and forks a child per program: the sandbox's server without
    bubblewrap, cgroups, seccomp, uids or limits."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(["/usr/bin/python3", "-I", "-S", "-c", WARM_SERVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def run(self, program: str, stdin: str) -> str:
        self.proc.stdin.write(json.dumps({"program": program, "stdin": stdin}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def bare(program: str, stdin: str) -> str:
    return subprocess.run(["/usr/bin/python3", "-c", program], input=stdin.encode(), capture_output=True,
                          check=True).stdout.decode()


def latency(sb: Sandbox, runs: int) -> dict:
    out = {}
    warm = WarmFork()
    try:
        for name, (program, stdin) in PROGRAMS.items():
            b, f, s = [], [], []
            warm.run(program, stdin)  # its first fork warms the page cache, as the sandbox's were warmed
            for _ in range(runs):
                t = time.perf_counter()
                want = bare(program, stdin)
                b.append(time.perf_counter() - t)
                t = time.perf_counter()
                forked = warm.run(program, stdin)
                f.append(time.perf_counter() - t)
                t = time.perf_counter()
                ex = sb.run(program, stdin)
                s.append(time.perf_counter() - t)
                assert ex.ok and ex.stdout == want == forked, ex
            mb, mf, ms = (statistics.median(x) * 1e3 for x in (b, f, s))
            out[name] = {"bare_ms": round(mb, 2), "warm_fork_ms": round(mf, 2), "sandbox_ms": round(ms, 2),
                         "ratio": round(ms / mb, 2), "ratio_vs_warm_fork": round(ms / mf, 2)}
            print(f"{name:8s} bare {mb:7.2f} ms   warm fork {mf:7.2f} ms   sandbox {ms:7.2f} ms   "
                  f"ratio {ms / mb:.2f}x (isolation alone: {ms / mf:.2f}x)")
    finally:
        warm.close()
    return out


def throughput(sb: Sandbox, jobs: int) -> dict:
    program, stdin = PROGRAMS["code_io"]
    t = time.perf_counter()
    results = sb.map([Job(program, stdin)] * jobs)
    rate = jobs / (time.perf_counter() - t)
    assert all(ex.ok for ex in results)
    t = time.perf_counter()
    with ThreadPoolExecutor(sb.n_slots) as pool:
        list(pool.map(lambda _: bare(program, stdin), range(jobs)))
    bare_rate = jobs / (time.perf_counter() - t)
    print(f"throughput ({sb.n_slots} slots, {jobs} code_io runs): sandbox {rate:.1f} exec/s, "
          f"bare {bare_rate:.1f} exec/s")
    return {"sandbox_exec_per_s": round(rate, 1), "bare_exec_per_s": round(bare_rate, 1)}


def _host_state(uids: set[int], servers: set[int]) -> dict:
    procs = zombies = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = dict(ln.split(":", 1) for ln in status.read_text().splitlines() if ":" in ln)
        except OSError:
            continue
        procs += int(lines["Uid"].split()[0]) in uids and int(status.parent.name) not in servers
        zombies += lines["State"].strip().startswith("Z")
    rss_mb = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return {"rss_mb": round(rss_mb, 1), "fds": len(os.listdir("/proc/self/fd")), "slot_processes": procs,
            "zombies": zombies, "tmp_entries": len(os.listdir("/tmp"))}


def soak(n: int) -> dict:
    program, stdin = PROGRAMS["code_io"]
    sb = Sandbox()
    uids = set(sb.uids)
    sb.map([Job("pass")] * sb.n_slots)
    before = _host_state(uids, sb.server_pids())
    rows, done, failed, t = [], 0, 0, time.perf_counter()
    while done < n:
        k = min(1000, n - done)
        failed += sum(not ex.ok for ex in sb.map([Job(program, stdin)] * k))
        done += k
        rows.append({"runs": done, **_host_state(uids, sb.server_pids())})
        print(f"  {rows[-1]}", flush=True)
    base = list(sb._base.values())
    sb.close()
    left = [str(d) for d in base if d.exists()]
    out = {"runs": n, "failed": failed, "seconds": round(time.perf_counter() - t, 1), "before": before,
           "after": rows[-1], "rss_growth_mb": round(rows[-1]["rss_mb"] - rows[0]["rss_mb"], 1),
           "cgroup_dirs_left": left}
    print(f"soak: {n} runs in {out['seconds']} s, {failed} failed; host RSS {rows[0]['rss_mb']} -> "
          f"{rows[-1]['rss_mb']} MB after the first 1,000; fds {before['fds']} -> {rows[-1]['fds']}; "
          f"slot processes left {rows[-1]['slot_processes']}; zombies {before['zombies']} -> {rows[-1]['zombies']}; "
          f"/tmp entries {before['tmp_entries']} -> {rows[-1]['tmp_entries']}; cgroup dirs left {len(left)}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--jobs", type=int, default=400)
    ap.add_argument("--soak", type=int, default=10_000)
    a = ap.parse_args()
    with Sandbox() as sb:
        sb.map([Job("pass")] * sb.n_slots)  # warm: each slot starts its server on first use
        result = {"latency": latency(sb, a.runs), "throughput": throughput(sb, a.jobs)}
    if a.soak:
        result["soak"] = soak(a.soak)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
