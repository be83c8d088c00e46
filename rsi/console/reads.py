"""What the console's pages show, read from a run directory without writing to it.

Each read opens the ledger read-only (WAL: safe while the loop writes) and reads only small tables
(stages, evals, gates, monitors, events) or one page of a big one, so a page answers in the same
time for a ledger of a thousand samples or a million. A run's state (running, with its stage and
progress from RUN/progress.json; waiting, stopped, finished or incomplete) is `rsi.views.state`'s.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rsi.errors import RsiError
from rsi.run.context import champions
from rsi.run.context import gates as effective_gates
from rsi.run.curriculum import frontier
from rsi.run.rundir import CHAMPION, LIVE, open_ledger
from rsi.stages.review import awaiting
from rsi.views.state import run_state
from rsi.views.status import accuracy

STALE_PROGRESS_S = 600


def _progress(run_dir: Path) -> dict | None:
    try:
        found = json.loads((run_dir / LIVE).read_text())
    except (OSError, ValueError):
        return None
    return found if time.time() - found.get("updated", 0) < STALE_PROGRESS_S else None


def overview(run_dir: Path) -> dict:
    """The run page's figures (also one row of the runs list): state, progress, champion, frontier by
    cycle against CPU hours, accuracy by cycle and difficulty, gates, monitor readings, cost."""
    with open_ledger(run_dir) as ledger:
        info = ledger.run_info() or {}
        evals, gates, costs = ledger.evals(), effective_gates(ledger), ledger.costs()
        readings, stops, done = ledger.readings(), ledger.events("stop"), ledger.completed_stages()
        waiting, state = awaiting(ledger), run_state(run_dir, ledger)
        label_metrics = {m["cycle"]: m["metrics"] for m in ledger.metrics() if m["stage"] == "label"}
    config = info.get("config", {})
    threshold = config.get("curriculum", {}).get("threshold", 0.95)
    min_d = config.get("curriculum", {}).get("min_difficulty") or min((r["difficulty"] for r in evals), default=1)
    by_cycle = champions(gates)
    champion_file = run_dir / CHAMPION
    champion = champion_file.read_text().strip() if champion_file.is_file() else by_cycle[max(by_cycle)]
    cpu = {c: sum(r["cpu_s"] for r in costs if r["cycle"] <= c) / 3600 for c in by_cycle}
    grid = {str(c): {str(d): a for d, a in sorted(accuracy(evals, m, upto_cycle=c).items())}
            for c, m in by_cycle.items() if any(r["cycle"] <= c and r["model"] == m for r in evals)}
    last_stop = stops[-1] if stops else None
    stopped = state["state"] == "stopped"
    worker = state["worker"]
    return {
        "name": info.get("name"), "dir": run_dir.name, "state": state["state"], "state_why": state["why"],
        "task": config.get("task"),
        "labeler": config.get("label", {}).get("labeler"), "cycles": config.get("loop", {}).get("cycles"),
        "created_at": info.get("created_at"),
        "worker": worker, "progress": _progress(run_dir) if worker else None,
        "stop": last_stop["detail"] | {"cycle": last_stop["cycle"], "at": last_stop["at"]} if stopped else None,
        "waiting": waiting,
        "last_stage": list(done[-1]) if done else None,
        "cycles_completed": sum(1 for c, s in done if s == "gate" and c >= 1),
        "champion": champion, "threshold": threshold,
        "frontier": frontier(accuracy(evals, champion), threshold, min_d) if evals else None,
        "frontier_by_cycle": [{"cycle": c, "cpu_h": round(cpu[c], 4), "champion": m,
                               "frontier": frontier(accuracy(evals, m, upto_cycle=c), threshold, min_d)}
                              for c, m in by_cycle.items() if str(c) in grid],
        "accuracy": grid,
        "labelled_max_difficulty": config.get("seed_data", {}).get("max_difficulty"),
        "gates": [{k: g[k] for k in ("cycle", "champion", "candidate", "promote", "reason", "gain")} for g in gates],
        "labels": {str(c): {k: m.get(k) for k in ("samples", "kept", "kept_fraction", "label_accuracy")}
                   for c, m in label_metrics.items()},
        "monitors": readings[-40:],
        "alerts": [r for r in readings if r["alert"]],
        "cost": {"cpu_h": sum(r["cpu_s"] for r in costs) / 3600, "wall_h": sum(r["wall_s"] for r in costs) / 3600,
                 "generated_tokens": sum(r["generated_tokens"] for r in costs)},
    }


def runs(guard) -> list[dict]:
    """One row per run in the runs directory: its overview's headline figures, or why it cannot be read."""
    rows = []
    for name in guard.runs():
        try:
            o = overview(guard.run_dir(name))
        except RsiError as e:
            rows.append({"dir": name, "state": "unreadable", "error": str(e)})
            continue
        rows.append({k: o[k] for k in ("dir", "name", "state", "task", "frontier", "champion", "cycles_completed",
                                       "last_stage", "cost", "alerts")} | {"progress": o["progress"]})
    return rows
