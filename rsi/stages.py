"""One function per stage of a cycle. Each reads its inputs from the ledger and checkpoints,
computes, and commits its outputs and costs in one ledger transaction (`ledger.stage`), so a run
killed at any point redoes at most the stage it was in, with nothing lost or duplicated.

Cycle 0 has two stages, `base` (train a model from scratch on ground-truth seed data) and
`evaluate`; every later cycle runs `propose`, `generate`, `label`, `train`, `evaluate`, `gate`.
The two that train, `base` and `train`, are in `rsi.stage_train`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from rsi.checkpoint import load_checkpoint
from rsi.context import (
    Context,
    champion,
    champion_cycle,
    champion_results,
    consecutive_rollbacks,
    current_frontier,
    heldout_problems,
    member_seed,
    model_name,
    timed,
)
from rsi.evaluate import evaluate_ladder
from rsi.gate import decide
from rsi.generate import generate
from rsi.labelers import label_samples
from rsi.monitoring import (
    alerted,
    chance_overlap,
    decontaminated,
    decontamination_reading,
    diversity_reading,
    hacking_reading,
    verifier_reading,
    without_dropped,
)
from rsi.monitors import label_audit
from rsi.progress import bar
from rsi.records import EvalResult, GateDecision, Problem, Proposal, Reading, Sample, veto
from rsi.review import AwaitingReview, verdict_for
from rsi.selfplay import check, proposer_prompt
from rsi.stage_train import stage_base, stage_train
from rsi.tasks import problems
from rsi.tasks.guard import GuardedTask

PROPOSAL_OFFSET = 500_000_000  # train-split items from here on are proposals; seed data stays below
PROPOSALS_PER_CYCLE = 1_000_000


def stage_propose(ctx: Context, cycle: int) -> None:
    """This cycle's problems, past the frontier: from the task's generator, or (`propose.by: model`)
    written by the champion and checked by the executor (`rsi.selfplay`)."""
    proposals: list[Proposal] = []
    with timed() as cost:
        champ = champion(ctx.ledger)
        f = current_frontier(ctx, champ)
        top = min(f + ctx.cfg.curriculum.width, ctx.cfg.loop.max_difficulty)
        n = ctx.cfg.propose.problems_per_difficulty * 2 ** min(2, consecutive_rollbacks(ctx.ledger))
        start = PROPOSAL_OFFSET + cycle * PROPOSALS_PER_CYCLE
        levels = range(max(f + 1, ctx.cfg.seed_data.min_difficulty), top + 1)
        if ctx.cfg.propose.by == "model":
            proposed, proposals, tokens = _model_proposals(ctx, cycle, champ, list(levels), n, start)
        else:
            proposed, tokens = [p for d in levels for p in problems(ctx.task, d, "train", n, start=start)], 0
        checked = len(proposed)
        chance, spread = chance_overlap(ctx, proposed) if ctx.cfg.filter.decontaminate else (0.0, 0.0)
        proposed, dropped = decontaminated(ctx, proposed)
        proposals = without_dropped(proposals, dropped)
    with ctx.ledger.stage(cycle, "propose") as w:
        ctx.ledger.add_problems(cycle, proposed)
        ctx.ledger.add_proposals(cycle, proposals)
        metrics = {"frontier": f, "difficulties": list(range(f + 1, top + 1)), "problems": len(proposed),
                   "checked": checked, "contaminated": dict(Counter(dropped.values())), "contaminated_ids": dropped,
                   "chance_contaminated": chance, "chance_spread": spread}
        if proposals:
            metrics |= {"proposals": len(proposals), "valid": sum(q.valid for q in proposals),
                        "dropped": dict(Counter(q.reason.split(":")[0] for q in proposals if not q.valid))}
        ctx.ledger.add_metrics(cycle, "propose", metrics)
        w.cost(generated_tokens=tokens, **cost)


def _model_proposals(ctx: Context, cycle: int, champ: str, levels: list[int], n: int, start: int):
    """The champion writes `n` proposals per level; the executor keeps the valid ones, each posing
    one problem per mode the task can pose. Returns (problems, proposals, generated tokens)."""
    from rsi.sandbox.pool import shared
    from rsi.tasks.code_io import pose, program_input

    p = ctx.cfg.propose
    model, tokenizer = load_checkpoint(ctx.checkpoint(champ))
    seen = {pair for q in ctx.ledger.problems() if (pair := program_input(q)) is not None}
    heldout = {pair for q in heldout_problems(ctx.cfg, ctx.task) if (pair := program_input(q)) is not None}
    alphabet = ctx.task.alphabet if ctx.cfg.model.kind == "tiny" else None
    made, proposals, tokens = [], [], 0
    with bar(ctx.console, f"propose: {champ} writes problems", len(levels) * n) as advance:
        for d in levels:
            prompt = proposer_prompt(p.prompt, d)
            outs = generate(model, tokenizer, [prompt], ctx.task.max_answer_chars(d) + 1, n=n,
                            temperature=p.temperature, seed=ctx.stage_seed(cycle, f"propose/{d}"),
                            batch_size=ctx.cfg.generate.batch_size, on_batch=advance, prefix=p.response_prefix)[0]
            checked = check([c.text for c in outs], seen, heldout, alphabet, shared())
            for j, (c, v) in enumerate(zip(outs, checked, strict=True)):
                ids = []
                for mode in ctx.task.proposable_modes() if v.valid else ():
                    q_prompt, answer = pose(mode, v.source, v.x, v.y)
                    made.append(Problem(ctx.task.name, d, "train", start + len(made), q_prompt, answer, source=champ))
                    ids.append(made[-1].id)
                proposals.append(Proposal(champ, d, j, prompt, c.text, c.n_tokens, c.finished, v.valid, v.reason,
                                          tuple(ids)))
                tokens += c.n_tokens
    return made, proposals, tokens


def stage_generate(ctx: Context, cycle: int) -> None:
    """Sample answers to this cycle's problems from the champion and from each of its friends.

    Member k's samples of a problem have indices k*n .. k*n+n-1 (n = samples_per_problem), so the
    labeler sees every member's answers to a problem together.
    """
    g, n = ctx.cfg.generate, ctx.cfg.generate.samples_per_problem
    by_model: dict[str, list[Sample]] = {}
    with timed() as cost:
        champ = champion_cycle(ctx.ledger)
        todo = ctx.ledger.problems(cycle=cycle)
        for k in range(ctx.cfg.label.friends + 1):
            name = model_name(champ, k)
            model, tokenizer = load_checkpoint(ctx.checkpoint(name))
            samples = by_model.setdefault(name, [])
            with bar(ctx.console, f"generate {name}", len(todo) * n) as advance:
                for d in sorted({p.difficulty for p in todo}):
                    group = [p for p in todo if p.difficulty == d]
                    outs = generate(model, tokenizer, [p.prompt for p in group], ctx.task.max_answer_chars(d) + 1,
                                    n=n, temperature=g.temperature, seed=member_seed(ctx, cycle, f"generate/{d}", k),
                                    batch_size=g.batch_size, on_batch=advance)
                    samples += [Sample(p.id, k * n + j, c.text, c.n_tokens)
                                for p, cs in zip(group, outs, strict=True) for j, c in enumerate(cs)]
    with ctx.ledger.stage(cycle, "generate") as w:
        for name, samples in by_model.items():
            ctx.ledger.add_samples(cycle, name, samples)
        w.cost(generated_tokens=sum(s.n_tokens for ss in by_model.values() for s in ss), **cost)


def stage_label(ctx: Context, cycle: int) -> None:
    """Label the cycle's samples, then take the label-side monitor readings: decontamination,
    label audit (below its floor the cycle's labels are all un-kept) and diversity."""
    m = ctx.cfg.monitors
    with timed() as cost:
        todo, samples = ctx.ledger.problems(cycle=cycle), ctx.ledger.samples(cycle)
        task = GuardedTask(ctx.task)
        labels = label_samples(task, todo, samples, ctx.cfg.label, ctx.cfg.filter, ctx.heldout.hit)
        audit = label_audit(labels, ctx.cfg.label.labeler, m)
        if audit.alert:
            labels = [replace(lab, kept=False, reason=f"label audit below floor (was: {lab.reason})") if lab.kept
                      else lab for lab in labels]
        kept = [lab for lab in labels if lab.kept]
        readings = alerted(ctx, [decontamination_reading(ctx, cycle, todo, labels), audit,
                                 diversity_reading(ctx, todo, samples)])
    with ctx.ledger.stage(cycle, "label") as w:
        ctx.ledger.add_labels(cycle, labels)
        ctx.ledger.add_metrics(cycle, "label", {
            "samples": len(labels), "kept": len(kept), "kept_fraction": len(kept) / max(1, len(labels)),
            "label_accuracy": audit.value["accuracy"], **task.metrics()})
        ctx.ledger.add_readings(cycle, readings)
        w.cost(**cost)


def _ladder(ctx: Context, task: GuardedTask, name: str, difficulties) -> list[EvalResult]:
    e = ctx.cfg.eval
    model, tokenizer = load_checkpoint(ctx.checkpoint(name))
    with bar(ctx.console, f"evaluate {name}", len(difficulties)) as advance:
        return evaluate_ladder(model, tokenizer, task, difficulties, e.problems_per_difficulty, name,
                               e.stop_after_zeros, ctx.cfg.generate.batch_size,
                               on_difficulty=lambda r: advance(1, f"d{r.difficulty} {r.accuracy:.0%}"))


def stage_evaluate(ctx: Context, cycle: int) -> None:
    e = ctx.cfg.eval
    ladder = list(range(e.min_difficulty, e.max_difficulty + 1))
    rows: list[EvalResult] = []
    task = GuardedTask(ctx.task)
    with timed() as cost:
        if cycle == 0:
            rows = _ladder(ctx, task, model_name(0), ladder)
        elif ctx.checkpoint(model_name(cycle)).exists() and not _train_skipped(ctx, cycle):
            rows = _ladder(ctx, task, model_name(cycle), ladder)
            champ = champion(ctx.ledger)
            have = champion_results(ctx.ledger, champ)
            missing = [r.difficulty for r in rows if r.difficulty not in have]
            if missing:  # the champion stopped its ladder earlier: score it on the same problems
                rows += _ladder(ctx, task, champ, missing)
    with ctx.ledger.stage(cycle, "evaluate") as w:
        for name in sorted({r.model for r in rows}):
            ctx.ledger.add_eval(cycle, name, [r for r in rows if r.model == name])
        if task.errors:
            ctx.ledger.add_metrics(cycle, "evaluate", task.metrics())
        w.cost(**cost)


def _reviewed(ctx: Context, cycle: int, cand: str, champ: str, would: GateDecision, decision: GateDecision,
              hacking: Reading, errors: Reading) -> GateDecision:
    """A promotion under `gate.require_approval` (`would`; `decision` is it after a monitor's veto):
    as a person decided with `rsi review`; with no review yet the run stops here (nothing of the
    gate is committed) until one is recorded. Approving a vetoed promotion overrules the monitor."""
    review = verdict_for(ctx.ledger, cycle, cand)
    if review is None:
        raise AwaitingReview(ctx.models_dir.parent, cycle, cand, champ, decision, [hacking, errors])
    who = f"{review['by']}: {review['why']}"
    if review["verdict"] == "reject":
        return replace(decision, promote=False, reason=f"rejected in review by {who} ({decision.reason})")
    overruled = f", overruling the alert ({hacking.message})" if not decision.promote else ""
    return replace(would, reason=f"{would.reason}; approved in review by {who}{overruled}")


def _train_skipped(ctx: Context, cycle: int) -> bool:
    return any(m["cycle"] == cycle and m["stage"] == "train" and m["metrics"].get("skipped")
               for m in ctx.ledger.metrics())


def stage_gate(ctx: Context, cycle: int):
    """Promote the candidate or roll back (`rsi.gate`), after the reward-hacking monitor's reading:
    with `monitors.rollback_on_hacking` an alert vetoes a promotion (a rollback that says what it
    overrode, which a person may overrule later with `rsi review`). With `gate.require_approval`
    a promotion, vetoed or not, waits for a person's review (`rsi.review`)."""
    champ = champion(ctx.ledger)
    cand = model_name(cycle)
    with timed() as cost:
        skipped = _train_skipped(ctx, cycle)
        if skipped:
            decision = GateDecision(False, "no candidate: no sample was accepted this cycle", 0.0, 0.0, 0.0)
        else:
            decision = decide(list(champion_results(ctx.ledger, champ).values()),
                              ctx.ledger.eval_results(cycle, cand), current_frontier(ctx, champ), ctx.cfg.gate)
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


STAGES = {"base": stage_base, "propose": stage_propose, "generate": stage_generate, "label": stage_label,
          "train": stage_train, "evaluate": stage_evaluate, "gate": stage_gate}


def stages_of(cycle: int) -> tuple[str, ...]:
    return ("base", "evaluate") if cycle == 0 else ("propose", "generate", "label", "train", "evaluate", "gate")
