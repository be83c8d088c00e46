"""The propose stage: this cycle's problems, just past the champion's frontier.

From the task's generator, or (`propose.by: model`) written by the champion and checked by the
executor (`rsi.tasks.selfplay`); either way decontaminated against the held-out set before they are
recorded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from rsi.engine.checkpoint import load_checkpoint
from rsi.engine.generate import generate
from rsi.progress import bar
from rsi.records import Problem, Proposal, ProposeFacts
from rsi.run.context import Context, champion, consecutive_rollbacks, current_frontier, heldout_problems, timed
from rsi.stages.monitoring import chance_overlap, decontaminated, without_dropped
from rsi.tasks import problems
from rsi.tasks.selfplay import check, proposer_prompt

PROPOSAL_OFFSET = 500_000_000  # train-split items from here on are proposals; seed data stays below
PROPOSALS_PER_CYCLE = 1_000_000


def stage_propose(ctx: Context, cycle: int) -> None:
    """This cycle's problems, past the frontier: from the task's generator, or (`propose.by: model`)
    written by the champion and checked by the executor (`rsi.tasks.selfplay`)."""
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
        facts = ProposeFacts(f, list(range(f + 1, top + 1)), len(proposed), checked, dict(Counter(dropped.values())),
                             dropped, chance, spread)
        if proposals:
            facts = replace(facts, proposals=len(proposals), valid=sum(q.valid for q in proposals),
                            dropped=dict(Counter(q.reason.split(":")[0] for q in proposals if not q.valid)))
        ctx.ledger.add_metrics(cycle, "propose", facts.metrics())
        w.cost(generated_tokens=tokens, **cost)


def _model_proposals(ctx: Context, cycle: int, champ: str, levels: list[int], n: int, start: int):
    """The champion writes `n` proposals per level; the executor keeps the valid ones, each posing
    one problem per mode the task can pose. Returns (problems, proposals, generated tokens)."""
    from rsi.sandbox.pool import shared
    from rsi.tasks.code_io import pose, program_input

    p = ctx.cfg.propose
    model, tokenizer = load_checkpoint(ctx.checkpoint(champ), ctx.cfg.engine)
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
