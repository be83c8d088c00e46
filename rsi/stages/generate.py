"""The generate stage: the champion and each of its friends answer this cycle's problems."""

from __future__ import annotations

from rsi.progress import bar
from rsi.records import Sample
from rsi.run.context import Context, champion_cycle, member_seed, model_name, timed
from rsi.scale.pool import SampleJob


def stage_generate(ctx: Context, cycle: int) -> None:
    """Sample answers to this cycle's problems from the champion and from each of its friends.

    Member k's samples of a problem have indices k*n .. k*n+n-1 (n = samples_per_problem), so the
    labeler sees every member's answers to a problem together. Each difficulty is one job for the
    run's pool (`rsi.scale`), with a seed of its own, so its answers are the same wherever it runs.
    """
    g, n = ctx.cfg.generate, ctx.cfg.generate.samples_per_problem
    by_model: dict[str, list[Sample]] = {}
    with timed() as cost:
        champ = champion_cycle(ctx.ledger)
        todo = ctx.ledger.problems(cycle=cycle)
        for k in range(ctx.cfg.label.friends + 1):
            name = model_name(champ, k)
            groups = [[p for p in todo if p.difficulty == d] for d in sorted({p.difficulty for p in todo})]
            jobs = [SampleJob([p.prompt for p in group], ctx.task.max_answer_chars(group[0].difficulty) + 1, n,
                              g.temperature, member_seed(ctx, cycle, f"generate/{group[0].difficulty}", k),
                              g.batch_size) for group in groups]
            with ctx.pool.session(ctx.checkpoint(name), ctx.cfg.engine) as session, \
                    bar(ctx.console, f"generate {name}", len(todo) * n) as advance:
                answers = session.run(jobs, on_rows=advance)
            by_model[name] = [Sample(p.id, k * n + j, c.text, c.n_tokens, name)
                              for group, outs in zip(groups, answers, strict=True)
                              for p, cs in zip(group, outs, strict=True) for j, c in enumerate(cs)]
    with ctx.ledger.stage(cycle, "generate") as w:
        for name, samples in by_model.items():
            ctx.ledger.add_samples(cycle, name, samples)
        w.cost(generated_tokens=sum(s.n_tokens for ss in by_model.values() for s in ss), **cost)
