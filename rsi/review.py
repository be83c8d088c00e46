"""Human approval of promotions (`gate.require_approval`), backing `rsi review RUN`.

With `gate.require_approval`, a gate that would promote its candidate first looks for a review of
that candidate in the ledger (`review` events). With none it stops the run (`AwaitingReview`, exit
status 3, recorded as a `stop` event) before committing anything, so the gate runs again on
resume. `rsi review RUN` shows what a person needs to decide: the candidate's held-out accuracy
against the champion's per difficulty, the cycle's monitor readings, and a sample of the new
training data; `rsi review RUN --approve/--reject --why ...` records the verdict with who gave it.
`rsi resume RUN` then promotes (approved) or rolls back (rejected, with the reviewer's reason).
A gate that would roll back needs no review.

    rsi review runs/quick-20261123-101500
    rsi review runs/quick-20261123-101500 --approve --by alice --why "gains hold at d4-d5"
"""

from __future__ import annotations

import getpass
import random
from pathlib import Path

from rsi.context import champion_results
from rsi.errors import RsiError
from rsi.ledger import Ledger
from rsi.records import GateDecision, Reading
from rsi.stopping import RunStopped

SAMPLE_SIZE = 12


class AwaitingReview(RunStopped):
    """The gate would promote a candidate that no person has reviewed yet."""

    def __init__(self, run_dir: Path, cycle: int, candidate: str, champion: str, decision: GateDecision,
                 hacking: Reading) -> None:
        super().__init__(run_dir, cycle, "gate", f"candidate {candidate} awaits review (gate.require_approval): "
                                                 f"see `rsi review {run_dir}`, approve or reject it")
        # the gate commits nothing while it waits, so the stop event carries what the reviewer needs of it
        self.detail = {"candidate": candidate, "champion": champion, "gate": decision.reason,
                       "reward_hacking": {"alert": hacking.alert, "message": hacking.message}}


class ReviewError(RsiError):
    """`rsi review` was asked for something the run cannot give (no candidate waits, no reason given)."""


def verdict_for(ledger: Ledger, cycle: int, candidate: str) -> dict | None:
    """The latest review of `candidate` in `cycle`: {"verdict": "approve"|"reject", "by", "why", "at"}."""
    found = [e for e in ledger.events("review") if e["cycle"] == cycle and e["detail"]["candidate"] == candidate]
    return None if not found else found[-1]["detail"] | {"at": found[-1]["at"]}


def awaiting(ledger: Ledger) -> dict | None:
    """The stop event's detail (candidate, champion, gate, reward_hacking) and its cycle, for the
    candidate the run stopped for, if it still waits."""
    stops = ledger.events("stop")
    done = ledger.completed_stages()
    if not stops or stops[-1]["detail"]["stages_done"] != len(done):
        return None
    detail = stops[-1]["detail"]
    if "candidate" not in detail or ledger.is_done(stops[-1]["cycle"], "gate"):
        return None
    return detail | {"cycle": stops[-1]["cycle"]}


def summary(run_dir: Path) -> dict:
    """What `rsi review RUN` shows about the waiting candidate; ReviewError if none waits."""
    with Ledger(Path(run_dir) / "ledger.sqlite", create=False) as ledger:
        waiting = awaiting(ledger)
        if waiting is None:
            raise ReviewError(f"no candidate of {run_dir} awaits review: a run with gate.require_approval stops "
                              "for review when its gate would promote; `rsi status` shows where the run is.")
        cycle, candidate, champion = waiting["cycle"], waiting["candidate"], waiting["champion"]
        champ = {d: r.accuracy for d, r in champion_results(ledger, champion).items()}
        cand = {r.difficulty: r.accuracy for r in ledger.eval_results(cycle, candidate)}
        problems = {p.id: p for p in ledger.problems(cycle=cycle)}
        kept = [lab for lab in ledger.labels(cycle) if lab.kept]
        shown = random.Random(f"review/{cycle}").sample(kept, min(SAMPLE_SIZE, len(kept)))
        readings = [r for r in ledger.readings() if r["cycle"] == cycle]
        readings.append({"monitor": "reward_hacking", **waiting["reward_hacking"]})
        previous = verdict_for(ledger, cycle, candidate)
    return {
        "cycle": cycle, "candidate": candidate, "champion": champion, "gate": waiting["gate"],
        "accuracy": {str(d): {"champion": champ.get(d), "candidate": cand.get(d)}
                     for d in sorted(set(champ) | set(cand))},
        "monitors": [{k: r[k] for k in ("monitor", "alert", "message")} for r in readings],
        "new_training_data": {"kept": len(kept), "sample": [
            {"problem": lab.problem_id, "source": problems[lab.problem_id].source,
             "prompt": problems[lab.problem_id].prompt, "answer": lab.answer} for lab in shown]},
        "previous_review": previous,
    }


def record(run_dir: Path, approve: bool, why: str, by: str | None = None) -> dict:
    """Record a verdict on the waiting candidate; `rsi resume` then acts on it."""
    if not why.strip():
        raise ReviewError("a review needs a reason: pass --why \"...\" (it is recorded with the verdict)")
    st = summary(run_dir)
    detail = {"candidate": st["candidate"], "verdict": "approve" if approve else "reject",
              "by": by or getpass.getuser(), "why": why.strip()}
    with Ledger(Path(run_dir) / "ledger.sqlite", create=False) as ledger:
        ledger.add_event(st["cycle"], "review", detail)
    return detail
