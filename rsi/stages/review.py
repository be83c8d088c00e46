"""Human approval of promotions (`gate.require_approval`), backing `rsi review RUN`.

With `gate.require_approval`, a gate that would promote its candidate first looks for a review of
that candidate in the ledger (`review` events). With none it stops the run (`AwaitingReview`, exit
status 3, recorded as a `stop` event) before committing anything, so the gate runs again on
resume. `rsi review RUN` shows what a person needs to decide: the candidate's held-out accuracy
against the champion's per difficulty, the cycle's monitor readings, and a sample of the new
training data; `rsi review RUN --approve/--reject --why ...` records the ruling with who gave it.
`rsi resume RUN` then promotes (approved) or rolls back (rejected, with the reviewer's reason).
A gate that would roll back needs no review.

A promotion a monitor vetoed (`rsi.stages.gate.veto`: a reward-hacking alert rolled back a candidate the
gate would have promoted) can be overruled the same way, after the fact: `rsi review RUN` shows the
latest such cycle that no later promotion has superseded (`--cycle N` another), and `--approve`
records a `review` event marked `overrule`; from then on the candidate counts as promoted
(`rsi.run.context.gates`) and the run's next stage starts from it. `--reject` confirms the rollback.

    rsi review runs/quick-20261123-101500
    rsi review runs/quick-20261123-101500 --approve --by alice --why "gains hold at d4-d5"
"""

from __future__ import annotations

import getpass
import random
from pathlib import Path

from rsi.errors import RsiError
from rsi.ledger import Ledger
from rsi.records import GateDecision, Reading, is_veto
from rsi.run.context import champion, champion_results, gates, ruling
from rsi.run.rundir import ledger_path, open_ledger
from rsi.run.runlock import hold
from rsi.run.stopping import RunStopped

SAMPLE_SIZE = 12


class AwaitingReview(RunStopped):
    """The gate would promote a candidate that no person has reviewed yet."""

    def __init__(self, run_dir: Path, cycle: int, candidate: str, champion: str, decision: GateDecision,
                 readings: list[Reading]) -> None:
        # the reason is recorded, and read later from any directory: the run's path is the reader's to add
        super().__init__(run_dir, cycle, "gate", f"candidate {candidate} awaits review (gate.require_approval): "
                                                 "approve or reject it with `rsi review RUN`")
        # the gate commits nothing while it waits, so the stop event carries what the reviewer needs of it
        self.detail = {"candidate": candidate, "champion": champion, "gate": decision.reason,
                       "gate_readings": [{"monitor": r.monitor, "alert": r.alert, "message": r.message}
                                         for r in readings]}


class ReviewError(RsiError):
    """`rsi review` was asked for something the run cannot give (no candidate waits, no reason given)."""


def ruling_for(ledger: Ledger, cycle: int, candidate: str) -> dict | None:
    """The latest review of `candidate` in `cycle`: {"ruling": "approve"|"reject", "by", "why", "at"}."""
    found = [e for e in ledger.events("review") if e["cycle"] == cycle and e["detail"]["candidate"] == candidate]
    return None if not found else found[-1]["detail"] | {"at": found[-1]["at"], "ruling": ruling(found[-1]["detail"])}


def awaiting(ledger: Ledger) -> dict | None:
    """The stop event's detail (candidate, champion, gate, gate_readings) and its cycle, for the
    candidate the run stopped for, if it still waits."""
    stops = ledger.events("stop")
    done = ledger.completed_stages()
    if not stops or stops[-1]["detail"]["stages_done"] != len(done):
        return None
    detail = stops[-1]["detail"]
    if "candidate" not in detail or ledger.is_done(stops[-1]["cycle"], "gate"):
        return None
    return detail | {"cycle": stops[-1]["cycle"]}


def overrulable(ledger: Ledger, cycle: int | None = None) -> dict | None:
    """The gate row of the latest vetoed promotion (or of `cycle`'s) that no person has reviewed
    and no later promotion has superseded."""
    rows = gates(ledger)
    reviewed = {(e["cycle"], e["detail"]["candidate"]) for e in ledger.events("review")}
    last_promotion = max((g["cycle"] for g in rows if g["promote"]), default=0)
    found = [g for g in rows if is_veto(g["reason"]) and not g["promote"] and g["cycle"] > last_promotion
             and (g["cycle"], g["candidate"]) not in reviewed and cycle in (None, g["cycle"])]
    return found[-1] if found else None


def summary(run_dir: Path, cycle: int | None = None) -> dict:
    """What `rsi review RUN` shows: the candidate waiting for approval (`kind` 'approval'), else the
    latest vetoed promotion a person may overrule (`kind` 'overrule'); ReviewError if neither."""
    with open_ledger(Path(run_dir)) as ledger:
        waiting = awaiting(ledger)
        if waiting is not None and cycle in (None, waiting["cycle"]):
            kind, cycle, candidate, champ, reason = ("approval", waiting["cycle"], waiting["candidate"],
                                                     waiting["champion"], waiting["gate"])
        elif (vetoed := overrulable(ledger, cycle)) is not None:
            kind, cycle, candidate, champ, reason = ("overrule", vetoed["cycle"], vetoed["candidate"],
                                                     vetoed["champion"], vetoed["reason"])
        else:
            which = f"cycle {cycle} of {run_dir} has" if cycle is not None else f"{run_dir} has"
            raise ReviewError(f"{which} no candidate to review: a run with gate.require_approval stops for review "
                              "when its gate would promote, and a promotion vetoed by a monitor can be overruled "
                              "until a later one supersedes it; `rsi status` shows where the run is.")
        champ_acc = {d: r.accuracy for d, r in champion_results(ledger, champ).items()}
        cand = {r.difficulty: r.accuracy for r in ledger.eval_results(cycle, candidate)}
        kept = ledger.kept_label_ids(cycle)  # ids, not rows: a cycle may keep tens of thousands
        shown = ledger.labels_with_problems(random.Random(f"review/{cycle}").sample(kept, min(SAMPLE_SIZE, len(kept))))
        readings = [r for r in ledger.readings() if r["cycle"] == cycle]
        if kind == "approval":  # the gate has not committed its readings yet (older runs kept only one)
            readings += waiting.get("gate_readings") or [{"monitor": "reward_hacking", **waiting["reward_hacking"]}]
        previous = ruling_for(ledger, cycle, candidate)
    return {
        "kind": kind, "cycle": cycle, "candidate": candidate, "champion": champ, "gate": reason,
        "vetoed": is_veto(reason),
        "accuracy": {str(d): {"champion": champ_acc.get(d), "candidate": cand.get(d)}
                     for d in sorted(set(champ_acc) | set(cand))},
        "monitors": [{k: r[k] for k in ("monitor", "alert", "message")} for r in readings],
        "new_training_data": {"kept": len(kept), "sample": [
            {"problem": lab["problem_id"], "source": lab["source"], "prompt": lab["prompt"], "answer": lab["answer"]}
            for lab in shown]},
        "previous_review": previous,
    }


def record(run_dir: Path, approve: bool, why: str, by: str | None = None, cycle: int | None = None) -> dict:
    """Record a ruling on the candidate `summary` shows: the waiting one (`rsi resume` then acts on
    it), or a vetoed one (approving overrules the veto: it becomes the champion at once)."""
    if not why.strip():
        raise ReviewError("a review needs a reason: pass --why \"...\" (it is recorded with the ruling)")
    with hold(Path(run_dir), "rsi review"):
        st = summary(run_dir, cycle)
        detail = {"candidate": st["candidate"], "ruling": "approve" if approve else "reject",
                  "by": by or getpass.getuser(), "why": why.strip(), "overrule": st["kind"] == "overrule"}
        with Ledger(ledger_path(run_dir), create=False) as ledger:
            ledger.add_event(st["cycle"], "review", detail)
            if detail["overrule"]:
                from rsi.run.rundir import CHAMPION, atomic_write_text

                atomic_write_text(Path(run_dir) / CHAMPION, champion(ledger) + "\n")
    return detail | {"cycle": st["cycle"]}
