"""How fast the console's pages answer on a big ledger: a run of a million samples.

Builds (once, kept under `--out`) the ledger of a `vote` run of 20 cycles, each with 10,000 `sort`
problems of 5 samples (1,000,000 samples and labels; every fifth problem's vote split), evaluations
over 10 difficulties, gates, monitor readings, and a stop before cycle 20's gate awaiting review.
Then it times each page as a browser asks for it (HTML, through FastAPI's test client, so the
figure is the server's work: routing, the ledger's reads, the template) and the run page's JSON,
which the page fetches every two seconds: `--repeats` times each, after one warm-up, and prints
the median and the slowest in milliseconds. Target: < 300 ms each for the run, samples and review
pages. The last line is JSON.

    .venv/bin/python benchmarks/console_pages.py [--samples 1000000] [--repeats 7] [--out runs/bench-console]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from fastapi.testclient import TestClient

from rsi.config import load_config
from rsi.console import create_app
from rsi.ledger import Ledger
from rsi.records import EvalResult, GateDecision, Label, Problem, Reading, Sample
from rsi.stages.review import AwaitingReview

PER_PROBLEM = 5
CYCLES = 20
DIFFICULTIES = range(1, 11)


def _evals(model: str, frontier: int) -> list[EvalResult]:
    out = []
    for d in DIFFICULTIES:
        correct = 50 if d <= frontier else max(0, 50 - 9 * (d - frontier))
        out.append(EvalResult(model, d, 50, correct, 0.0, 1.0, tuple(i < correct for i in range(50))))
    return out


def build(run: Path, samples: int) -> None:
    problems_per_cycle = samples // (CYCLES * PER_PROBLEM)
    cfg = load_config("vote", ["loop.cycles=20", "gate.require_approval=true"])
    with Ledger(run / "ledger.sqlite") as led:
        led.set_run("vote", cfg.model_dump(mode="json"))
        with led.stage(0, "base") as w:
            w.add_eval(0, "cycle-0000", _evals("cycle-0000", 1))
            w.cost(wall_s=60.0, cpu_s=110.0)
        for cycle in range(1, CYCLES + 1):
            t0 = time.perf_counter()
            made = []
            for i in range(problems_per_cycle):
                digits = f"{(cycle * 7_919 + i * 104_729) % 10 ** 8:08d}"[: 1 + i % 8]
                made.append(Problem("sort", len(digits), "train", cycle * 1_000_000 + i, f"s:{digits}=",
                                    "".join(sorted(digits))))
            with led.stage(cycle, "propose") as w:
                w.add_problems(cycle, made)
            split = [i % 5 == 0 for i in range(len(made))]
            answers = [[p.answer if not split[i] or k < 2 else p.answer[::-1] + "0" for k in range(PER_PROBLEM)]
                       for i, p in enumerate(made)]
            with led.stage(cycle, "generate") as w:
                champ = f"cycle-{cycle - 1:04d}"
                w.add_samples(cycle, champ, [Sample(p.id, k, answers[i][k], 6, champ)
                                             for i, p in enumerate(made) for k in range(PER_PROBLEM)])
                w.cost(generated_tokens=6 * PER_PROBLEM * len(made), cpu_s=40.0)
            with led.stage(cycle, "label") as w:
                w.add_labels(cycle, [Label(p.id, k, answers[i][k], not split[i],
                                           f"no majority: top answer has 3/{PER_PROBLEM} < 100%" if split[i]
                                           else f"majority {PER_PROBLEM}/{PER_PROBLEM}",
                                           0.6 if split[i] else 1.0, answers[i][k] == p.answer)
                                     for i, p in enumerate(made) for k in range(PER_PROBLEM)])
                w.add_metrics(cycle, "label", {"samples": PER_PROBLEM * len(made), "kept_fraction": 0.8,
                                               "label_accuracy": 1.0})
                w.add_readings(cycle, [Reading("label_audit", {"accuracy": 1.0}, False, "kept labels 100% correct")])
            with led.stage(cycle, "train") as w:
                w.cost(train_sequences=4800, cpu_s=300.0)
            with led.stage(cycle, "evaluate") as w:
                w.add_eval(cycle, f"cycle-{cycle:04d}", _evals(f"cycle-{cycle:04d}", 1 + cycle // 2))
                w.cost(cpu_s=20.0)
            if cycle == CYCLES:
                stop = AwaitingReview(run, cycle, f"cycle-{cycle:04d}", f"cycle-{cycle - 1:04d}",
                                      GateDecision(True, "gain +9%", 0.09, 0.04, 0.0),
                                      [Reading("reward_hacking", {}, False, "no drift")])
                led.add_event(cycle, "stop", {"before": "gate", "reason": stop.reason,
                                              "stages_done": len(led.completed_stages()), **stop.detail})
                break
            with led.stage(cycle, "gate") as w:
                w.add_gate(cycle, f"cycle-{cycle - 1:04d}", f"cycle-{cycle:04d}",
                           GateDecision(True, "gain above the frontier", 0.1, 0.05, 0.0))
            print(f"cycle {cycle}: {PER_PROBLEM * len(made):,} samples in {time.perf_counter() - t0:.1f}s", flush=True)
    (run / "champion").write_text(f"cycle-{CYCLES - 1:04d}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-console"))
    args = ap.parse_args()
    run = args.out / f"big-{args.samples}"
    if not (run / "champion").is_file():
        args.out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        build(run, args.samples)
        print(f"built {run} in {time.perf_counter() - t0:.0f}s", flush=True)
    with Ledger(run / "ledger.sqlite", readonly=True) as led:
        n = led._con.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    client = TestClient(create_app(args.out, "127.0.0.1", token="bench"))
    client.cookies.set("rsi_console", "bench")
    name = run.name
    pages = {
        "runs list": "/",
        "run": f"/runs/{name}",
        "run json (polled)": f"/api/runs/{name}",
        "samples": f"/runs/{name}/samples",
        "samples, page 2000": f"/runs/{name}/samples?after={n // 2}",
        "samples, cycle 12 dropped": f"/runs/{name}/samples?cycle=12&kept=dropped",
        "samples, difficulty 8 human": f"/runs/{name}/samples?difficulty=8&source=human",
        "samples, reason 'no majority'": f"/runs/{name}/samples?reason=no+majority",
        "review": f"/runs/{name}/review",
        "label queue": f"/runs/{name}/label",
    }
    results = {}
    for what, url in pages.items():
        out = client.get(url, headers={"accept": "text/html"})
        assert out.status_code == 200, (url, out.status_code, out.text[:300])
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            client.get(url, headers={"accept": "text/html"})
            times.append(1000 * (time.perf_counter() - t0))
        results[what] = {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1),
                         "bytes": len(out.content)}
        print(f"{what:32} median {results[what]['median_ms']:8.1f} ms   max {results[what]['max_ms']:8.1f} ms",
              flush=True)
    target = ("run", "samples", "samples, page 2000", "samples, cycle 12 dropped", "review")
    print(json.dumps({"samples": n, "repeats": args.repeats, "pages": results,
                      "worst_target_page_median_ms": max(results[k]["median_ms"] for k in target),
                      "target_ms": 300}))


if __name__ == "__main__":
    main()
