"""What every stage works with: the `Context` the loop builds, and the run's state derived from
the ledger (the champion, its results, the frontier), which no stage keeps anywhere else."""

from __future__ import annotations

import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path

from rich.console import Console

from rsi.config import Config
from rsi.ledger import Ledger
from rsi.monitors import HeldoutIndex
from rsi.records import EvalResult, GrpoStep, Problem, ProposeFacts, TrainFacts, is_veto
from rsi.run.curriculum import frontier
from rsi.scale.pool import LocalPool, Pool
from rsi.tasks import Task, control_set, heldout_set
from rsi.track import Tracking

CONTROL_SETS = 8  # control sets the decontamination monitor's chance is the mean over


@dataclass
class Context:
    """What every stage needs; built by the loop."""

    cfg: Config
    task: Task
    ledger: Ledger
    models_dir: Path
    console: Console
    pool: Pool = field(default_factory=LocalPool)  # where sampling and verification run (`rsi.scale`)
    track: Tracking = field(default_factory=Tracking.off)  # the run's experiment trackers (`rsi.track`)

    def checkpoint(self, name: str):
        return self.models_dir / name

    def stage_seed(self, cycle: int, stage: str) -> int:
        return random.Random(f"{self.cfg.seed}/{cycle}/{stage}").randrange(2**31)

    @cached_property
    def heldout(self) -> HeldoutIndex:
        """Every held-out evaluation prompt of the run, for decontamination."""
        return heldout_index(self.cfg, self.task)

    @cached_property
    def controls(self) -> list[HeldoutIndex]:
        """The held-out ladder's `CONTROL_SETS` control sets (`rsi.tasks.control_set`), indexed like `heldout`."""
        return [heldout_index(self.cfg, self.task, partial(control_set, k=k)) for k in range(CONTROL_SETS)]


def model_name(cycle: int, member: int = 0) -> str:
    """Checkpoint name of cycle's model; member k >= 1 is the k-th friend (`label.friends`)."""
    return f"cycle-{cycle:04d}" if member == 0 else f"friend{member}-{cycle:04d}"


def member_seed(ctx: Context, cycle: int, stage: str, member: int) -> int:
    return ctx.stage_seed(cycle, stage if member == 0 else f"{stage}/friend{member}")


@contextmanager
def timed():
    cost = {"wall_s": 0.0, "cpu_s": 0.0}
    w, c = time.perf_counter(), time.process_time()
    yield cost
    cost["wall_s"], cost["cpu_s"] = time.perf_counter() - w, time.process_time() - c


# ---- state derived from the ledger -------------------------------------------------------------

def gates(ledger: Ledger) -> list[dict]:
    """The gate decisions in cycle order, where a promotion a monitor vetoed (`rsi.stages.gate.veto`) and a
    person then overruled in `rsi review` counts as promoted, its reason saying by whom and why.
    The gates table itself is never rewritten: the overrule is a `review` event."""
    rows = ledger.gates()
    reviews = ledger.events("review") if any(is_veto(g["reason"]) for g in rows) else []
    out = []
    for g in rows:
        review = overrule_of(g, reviews)
        if review is not None:
            g = g | {"promote": True,
                     "reason": f"{g['reason']} — overruled in review by {review['by']}: {review['why']}"}
        out.append(g)
    return out


def overrule_of(gate: dict, reviews: list[dict]) -> dict | None:
    """The latest of `reviews` (`review` events) of a vetoed gate's candidate, if it approves."""
    if gate["promote"] or not is_veto(gate["reason"]):
        return None
    found = [e["detail"] for e in reviews
             if e["cycle"] == gate["cycle"] and e["detail"]["candidate"] == gate["candidate"]]
    return found[-1] if found and ruling(found[-1]) == "approve" else None


def ruling(review: dict) -> str:
    """A review's ruling, "approve" or "reject" (ledgers written before the word was settled call it "verdict";
    a verifier's judgement of an answer is a `Verdict`)."""
    return review.get("ruling") or review["verdict"]


def champions(gate_rows: list[dict]) -> dict[int, str]:
    """The champion at the end of each cycle, from the effective gates (`gates`): the base model
    after cycle 0, then after each gate its promoted candidate or the champion it kept. The one
    derivation of who is champion that the stages, `status`, `review` and `report` share."""
    out = {0: model_name(0)}
    current = out[0]
    for g in sorted(gate_rows, key=lambda g: g["cycle"]):
        current = g["candidate"] if g["promote"] else current  # (a rollback's recorded champion predates overrules)
        out[g["cycle"]] = current
    return out


def champion(ledger: Ledger) -> str:
    """The promoted candidate of the latest promoting gate, else the base model."""
    return model_name(champion_cycle(ledger))


def champion_cycle(ledger: Ledger, before: int | None = None) -> int:
    """The cycle that trained the champion (0: the base), or the champion cycle `before` started.
    Its friends are promoted with it."""
    promoted = [g["cycle"] for g in gates(ledger) if g["promote"] and (before is None or g["cycle"] < before)]
    return promoted[-1] if promoted else 0


def champion_results(ledger: Ledger, name: str) -> dict[int, EvalResult]:
    """Every held-out result of model `name`, the latest per difficulty."""
    out: dict[int, EvalResult] = {}
    for cycle in sorted({e["cycle"] for e in ledger.evals(name)}):
        for r in ledger.eval_results(cycle, name):
            out[r.difficulty] = r
    return out


def current_frontier(ctx: Context, name: str) -> int:
    acc = {d: r.accuracy for d, r in champion_results(ctx.ledger, name).items()}
    return frontier(acc, ctx.cfg.curriculum.threshold, ctx.cfg.eval.min_difficulty)


def consecutive_rollbacks(ledger: Ledger) -> int:
    n = 0
    for g in reversed(gates(ledger)):
        if g["promote"]:
            break
        n += 1
    return n


def heldout_problems(cfg: Config, task: Task, draw=heldout_set) -> list[Problem]:
    """Every problem of the run's held-out evaluation ladder (`draw=control_set`: of its control set)."""
    e = cfg.eval
    return [p for d in range(e.min_difficulty, e.max_difficulty + 1) for p in draw(task, d, e.problems_per_difficulty)]


def heldout_index(cfg: Config, task: Task, draw=heldout_set) -> HeldoutIndex:
    """The held-out prompts indexed for decontamination (`monitors.ngram`, `monitors.ngram_overlap`)."""
    return HeldoutIndex([p.prompt for p in heldout_problems(cfg, task, draw)], cfg.monitors.ngram,
                        cfg.monitors.ngram_overlap)


def _stage_metrics(ledger: Ledger, cycle: int, stage: str) -> dict | None:
    return next((x["metrics"] for x in ledger.metrics() if x["cycle"] == cycle and x["stage"] == stage), None)


def propose_facts(ledger: Ledger, cycle: int) -> ProposeFacts:
    """What cycle `cycle`'s propose stage recorded (it must have run)."""
    m = _stage_metrics(ledger, cycle, "propose")
    if m is None:
        raise LookupError(f"cycle {cycle} has no propose stage in the ledger")
    return ProposeFacts.read(m)


def train_facts(ledger: Ledger, cycle: int) -> TrainFacts | None:
    """What cycle `cycle`'s train stage recorded, or None before it ran (cycle 0 has none)."""
    m = _stage_metrics(ledger, cycle, "train")
    return None if m is None else TrainFacts.read(m)


def grpo_steps(metrics: list[dict], cycle: int | None = None) -> list[tuple[int, GrpoStep]]:
    """(cycle, step) of every GRPO step the train stages recorded (`ledger.metrics()`), every member's,
    in order; only `cycle`'s when given."""
    return [(m["cycle"], GrpoStep.read(s)) for m in metrics
            if m["stage"] == "grpo" and cycle in (None, m["cycle"]) for s in m["metrics"]["steps"]]


def train_skipped(ledger: Ledger, cycle: int) -> bool:
    """Whether cycle `cycle`'s train stage made no candidate (no sample was accepted)."""
    facts = train_facts(ledger, cycle)
    return facts is not None and bool(facts.skipped)


def member_of(name: str) -> int:
    """The member index of checkpoint `name` (0: the cycle's model; k: its k-th friend): `model_name`'s inverse."""
    return int(name[len("friend"):name.index("-")]) if name.startswith("friend") else 0
