"""The gate: promote the candidate only if it beats the champion on the same held-out problems.

Both models' per-problem results are paired. The gain is the mean paired difference over the
problems above the champion's frontier (where improvement is sought); there must be at least
`min_problems` of them (distinct: `rsi.tasks.heldout_set`), its one-sided lower confidence bound
must be > 0 and the gain itself >= `min_gain`. At every difficulty at or below
the champion's frontier the candidate may lose at most `max_regression` accuracy.

A promotion a monitor vetoes (`veto`: a reward-hacking alert with `monitors.rollback_on_hacking`)
becomes a rollback whose reason says what the gate would have done and with what gain, so a person
can overrule it in `rsi review` (recorded with who and why).
"""

from __future__ import annotations

import math
from dataclasses import replace
from statistics import NormalDist

from rsi.config import GateConfig
from rsi.records import EvalResult, GateDecision, Reading, veto
from rsi.run.context import Context, champion, champion_results, current_frontier, model_name, timed, train_skipped
from rsi.stages.monitoring import alerted, hacking_reading, verifier_reading
from rsi.stages.review import AwaitingReview, ruling_for
from rsi.stages.stall import stall_cause


def decide(champion: list[EvalResult], candidate: list[EvalResult], champion_frontier: int,
           cfg: GateConfig) -> GateDecision:
    champ = {r.difficulty: r for r in champion}
    cand = {r.difficulty: r for r in candidate}
    common = sorted(set(champ) & set(cand))
    diffs: list[int] = []
    worst, worst_at = 0.0, None
    for d in common:
        a, b = champ[d], cand[d]
        if len(a.per_problem) != len(b.per_problem):
            raise ValueError(f"difficulty {d}: champion and candidate were scored on different problem sets")
        if d <= champion_frontier:
            drop = a.accuracy - b.accuracy
            if drop > worst:
                worst, worst_at = drop, d
        else:
            diffs += [int(y) - int(x) for x, y in zip(a.per_problem, b.per_problem, strict=True)]
    if not diffs:
        return GateDecision(False, "no held-out problems above the champion's frontier to compare on", 0.0, 0.0, worst)
    m = len(diffs)
    gain = sum(diffs) / m
    var = sum((x - gain) ** 2 for x in diffs) / max(1, m - 1)
    lo = gain - NormalDist().inv_cdf(cfg.confidence) * math.sqrt(var / m)
    if worst > cfg.max_regression:
        return GateDecision(False,
                            f"regressed {worst:.1%} at difficulty {worst_at} (> {cfg.max_regression:.1%} allowed)",
                            gain, lo, worst)
    if m < cfg.min_problems:
        return GateDecision(False, f"only {m} distinct held-out problems above the frontier, fewer than "
                                   f"gate.min_problems ({cfg.min_problems}): too few for a confident comparison "
                                   "(raise eval.problems_per_difficulty, or add held-out rows to the task file)",
                            gain, lo, worst)
    if gain < cfg.min_gain:
        reason = f"gain {gain:+.1%} above the frontier is below min_gain {cfg.min_gain:.1%}"
        return GateDecision(False, reason, gain, lo, worst)
    if lo <= 0:
        return GateDecision(False, f"gain {gain:+.1%} is not significant (lower bound {lo:+.1%} at "
                                   f"{cfg.confidence:.0%} confidence)", gain, lo, worst)
    return GateDecision(True, f"gain {gain:+.1%} above the frontier on {m} problems (lower bound {lo:+.1%}), "
                              f"worst regression {worst:.1%}", gain, lo, worst)


def _reviewed(ctx: Context, cycle: int, cand: str, champ: str, would: GateDecision, decision: GateDecision,
              hacking: Reading, errors: Reading) -> GateDecision:
    """A promotion under `gate.require_approval` (`would`; `decision` is it after a monitor's veto):
    as a person decided with `rsi review`; with no review yet the run stops here (nothing of the
    gate is committed) until one is recorded. Approving a vetoed promotion overrules the monitor."""
    review = ruling_for(ctx.ledger, cycle, cand)
    if review is None:
        raise AwaitingReview(ctx.models_dir.parent, cycle, cand, champ, decision, [hacking, errors])
    who = f"{review['by']}: {review['why']}"
    if review["ruling"] == "reject":
        return replace(decision, promote=False, reason=f"rejected in review by {who} ({decision.reason})")
    overruled = f", overruling the alert ({hacking.message})" if not decision.promote else ""
    return replace(would, reason=f"{would.reason}; approved in review by {who}{overruled}")


def stage_gate(ctx: Context, cycle: int):
    """Promote the candidate or roll back (`rsi.stages.gate`), after the reward-hacking monitor's reading:
    with `monitors.rollback_on_hacking` an alert vetoes a promotion (a rollback that says what it
    overrode, which a person may overrule later with `rsi review`). With `gate.require_approval`
    a promotion, vetoed or not, waits for a person's review (`rsi.stages.review`)."""
    champ = champion(ctx.ledger)
    cand = model_name(cycle)
    with timed() as cost:
        skipped = train_skipped(ctx.ledger, cycle)
        if skipped:
            decision = GateDecision(False, "no candidate: no sample was accepted this cycle", 0.0, 0.0, 0.0)
        else:
            before, after = list(champion_results(ctx.ledger, champ).values()), ctx.ledger.eval_results(cycle, cand)
            frontier = current_frontier(ctx, champ)
            decision = decide(before, after, frontier, ctx.cfg.gate)
            if not decision.promote and (cause := stall_cause(ctx.ledger.problems(cycle=cycle),
                                                              ctx.ledger.labels(cycle), frontier, before, after)):
                decision = replace(decision, reason=f"{decision.reason}; {cause}")
        hacking, errors = alerted(ctx, [hacking_reading(ctx, cycle, None if skipped else decision.gain),
                                        verifier_reading(ctx, cycle)])
        would = decision
        if hacking.alert and ctx.cfg.monitors.rollback_on_hacking and decision.promote:
            decision = veto(decision, hacking.message)  # says so, so a person can overrule it (rsi review)
        if would.promote and ctx.cfg.gate.require_approval:
            decision = _reviewed(ctx, cycle, cand, champ, would, decision, hacking, errors)
    with ctx.ledger.stage(cycle, "gate") as w:
        ctx.ledger.add_gate(cycle, champ, cand, decision)
        ctx.ledger.add_readings(cycle, [hacking, errors])
        w.cost(**cost)
    return decision
