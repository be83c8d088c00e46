"""A run's state, decided in one place for `rsi status`, the console's pages and its API:

    running     a process holds the run's lock (`rsi run` / `rsi resume`)
    waiting     stopped before a promotion that awaits a person's review (gate.require_approval)
    stopped     stopped cleanly (budget, STOP file, signal) before its end; `rsi resume` goes on
    finished    ran every cycle it was given (or stopped at loop.max_difficulty): the loop recorded
                its `end` event after the last stage it ran
    incomplete  none of these: its process died or raised mid-run (a crash, a kill, an error in a
                part of the user's); everything committed is kept and `rsi resume` goes on
"""

from __future__ import annotations

import os
from pathlib import Path

from rsi.ledger import Ledger
from rsi.run.runlock import LOCK_FILE, holder
from rsi.stages.review import awaiting

RESUME_HINT = "everything before it is kept; `rsi resume {run}` goes on"


def lock_holder(run_dir: Path) -> dict | None:
    """The process working on the run ({pid, command, since}) while it holds the run's lock, else None.
    The lock file stays after its holder ends, so the kernel's table of locks (/proc/locks) says
    whether anyone holds it now; without that table, whether the process it names is alive."""
    lock = run_dir / LOCK_FILE
    try:
        inode = lock.stat().st_ino
    except OSError:
        return None
    who = holder(run_dir)
    if not who or not isinstance(who.get("pid"), int):
        return None
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        table = None
    if table is not None:
        held = any(f[1] == "FLOCK" and f[5].rsplit(":", 1)[-1] == str(inode)
                   for f in (line.split() for line in table.splitlines()) if len(f) > 5)
        return who if held else None
    try:
        os.kill(who["pid"], 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        pass
    return who


def run_state(run_dir: Path, ledger: Ledger) -> dict:
    """{"state": one of the module docstring's, "why": a sentence, "worker": the lock's holder or None}."""
    run_dir = Path(run_dir)
    done = ledger.completed_stages()
    worker = lock_holder(run_dir)
    if worker:
        return {"state": "running", "why": f"{worker.get('command') or 'rsi'} (pid {worker['pid']}) is running it",
                "worker": worker}
    if (waiting := awaiting(ledger)) is not None:
        return {"state": "waiting", "why": f"cycle {waiting['cycle']}'s candidate {waiting['candidate']} awaits a "
                                           f"review: `rsi review {run_dir}`", "worker": None}
    stops, ends = ledger.events("stop"), ledger.events("end")
    if stops and stops[-1]["detail"]["stages_done"] == len(done):
        d = stops[-1]["detail"]
        return {"state": "stopped", "why": f"stopped before cycle {stops[-1]['cycle']} {d['before']}: {d['reason']}; "
                                           + RESUME_HINT.format(run=run_dir), "worker": None}
    if ends and ends[-1]["detail"]["stages_done"] == len(done):
        return {"state": "finished", "why": ends[-1]["detail"]["why"], "worker": None}
    if not ends and _ran_every_cycle(ledger, done):  # a run recorded before the loop wrote `end` events
        return {"state": "finished", "why": "it ran every cycle it was given", "worker": None}
    last = f"after cycle {done[-1][0]} {done[-1][1]}" if done else "before its first stage completed"
    return {"state": "incomplete", "why": f"its process ended {last} without finishing or stopping (a crash, a kill "
                                          f"or an error); " + RESUME_HINT.format(run=run_dir), "worker": None}


def _ran_every_cycle(ledger: Ledger, done: list[tuple[int, str]]) -> bool:
    cycles = ((ledger.run_info() or {}).get("config") or {}).get("loop", {}).get("cycles")
    return bool(done) and cycles is not None and done[-1] == (cycles, "gate" if cycles else "evaluate")
