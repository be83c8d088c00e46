"""What fanning the stages out on Ray costs and gains on this machine (`scale.ray`).

1. `verify_runs_per_s`: sandboxed verification of a code task (`code_io_induction`, each answer
   its reference body, so every answer is one sandbox run) through the run's pool: in this
   process (`in_process`, the shared sandbox with a slot per core), and on a local Ray with 1 and
   2 workers (each worker a sandbox with a slot per CPU it holds: 1). `fanout_ratio` is 2 workers
   over 1 (the issue's target: >= 1.7 on 2 cores). Timed after a warm-up batch (the workers'
   sandboxes started), median of --repeats.
2. `quick_wall_s`: `rsi run quick` in this process, with `scale.ray.address=local
   scale.workers=1` (Ray started inside the run), and with `scale.ray.address=auto` on a Ray
   started before (`ray start --head`, as on a cluster); `overhead_ratio` and
   `overhead_ratio_running_ray` are their median walls over the in-process one's (target <= 1.2),
   the three run alternately --quick-repeats times; `fingerprints_equal` says whether all three
   wrote the same rows.

    python benchmarks/ray_fanout.py [--answers 400] [--repeats 3] [--skip-quick] [--quick-repeats 3]

The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ray

from rsi import resolve
from rsi.scale.pool import LocalPool
from rsi.scale.ray_pool import LOCAL_RAY, RayPool
from rsi.tasks import get_task, problems
from rsi.views.fingerprint import fingerprint

TASK = "code_io_induction"


def runs_per_s(pool, pairs, repeats: int) -> float:
    pool.verify(None, pairs[:40])  # warm: the sandboxes' servers started
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        verdicts = pool.verify(get_task(TASK), pairs)
        times.append(time.perf_counter() - t)
        assert all(v.correct for v in verdicts), [v.reason for v in verdicts if not v.correct][:3]
    return len(pairs) / statistics.median(times)


def quick(run_dir: Path, overrides: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rsi.cli", "run", "quick", "--run-dir", str(run_dir),
                    *[a for o in overrides for a in ("--set", o)]], check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--answers", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-quick", action="store_true")
    ap.add_argument("--quick-repeats", type=int, default=3)
    args = ap.parse_args()
    task = get_task(TASK)
    items = [p for d in range(task.min_difficulty, task.min_difficulty + 4)
             for p in problems(task, d, "train", args.answers // 4)]
    pairs = [(p, p.answer) for p in items]
    out: dict = {"task": TASK, "answers": len(pairs)}

    class Here(LocalPool):  # LocalPool's verify takes the task it is given
        def verify(self, _task, pairs):
            return super().verify(task, pairs)

    out["verify_runs_per_s"] = {"in_process": round(runs_per_s(Here(), pairs, args.repeats), 1)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for workers in (1, 2):
            pool = RayPool(resolve.load("code", [f"task={TASK}", "scale.ray.address=local",
                                                  f"scale.workers={workers}"]))
            out["verify_runs_per_s"][f"ray_{workers}"] = round(runs_per_s(pool, pairs, args.repeats), 1)
            pool.close()
    finally:
        ray.shutdown()
    v = out["verify_runs_per_s"]
    out["fanout_ratio"] = round(v["ray_2"] / v["ray_1"], 3)
    print(json.dumps(out), file=sys.stderr)
    if not args.skip_quick:
        walls: dict[str, list[float]] = {"in_process": [], "ray_1_local": [], "ray_1_running": []}
        ray_bin = str(Path(sys.executable).with_name("ray"))
        with tempfile.TemporaryDirectory() as tmp:
            for k in range(args.quick_repeats):  # side by side, alternating: the CPU drifts within minutes
                walls["in_process"].append(quick(Path(tmp) / f"here{k}", []))
                walls["ray_1_local"].append(quick(Path(tmp) / f"ray{k}", ["scale.ray.address=local",
                                                                           "scale.workers=1"]))
                # A Ray already running, as on a cluster: the run pays for its worker, not for starting Ray.
                # Started as the README says for a head node that also runs the driver (workers not niced).
                subprocess.run([ray_bin, "start", "--head", "--num-cpus=2", "--include-dashboard=false",
                                f"--system-config={json.dumps(LOCAL_RAY)}"], check=True, capture_output=True)
                try:
                    walls["ray_1_running"].append(quick(Path(tmp) / f"running{k}", ["scale.ray.address=auto",
                                                                                     "scale.workers=1"]))
                finally:
                    subprocess.run([ray_bin, "stop", "--force"], capture_output=True)
                print(json.dumps({name: round(w[-1], 1) for name, w in walls.items()}), file=sys.stderr)
            out["fingerprints_equal"] = all(fingerprint(Path(tmp) / "here0") == fingerprint(Path(tmp) / name)
                                            for name in ("ray0", "running0"))
        med = {name: statistics.median(w) for name, w in walls.items()}
        out["quick_wall_s"] = {name: [round(x, 1) for x in w] for name, w in walls.items()}
        out["overhead_ratio"] = round(med["ray_1_local"] / med["in_process"], 3)
        out["overhead_ratio_running_ray"] = round(med["ray_1_running"] / med["in_process"], 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
