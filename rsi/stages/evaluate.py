"""Held-out evaluation: greedy exact-match accuracy per difficulty with 95 % Wilson intervals.

The held-out problems of a difficulty are always the distinct prompts among items 0..n-1 of the
`heldout` split (`heldout_set`), so every model of a run is scored on the same problems and the
gate can compare them pair by pair. Distinct, because a small problem space repeats itself (sort
at length 1 has 10 strings; a 60-row `jsonl` file may hold 4 held-out rows at a difficulty, which
items 0..49 reuse by index): counting a repeat as another problem would overstate the gate's
confidence, so `EvalResult.n` is the number of distinct problems.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from rsi.progress import bar
from rsi.records import EvalResult, Problem
from rsi.run.context import Context, champion, champion_results, model_name, timed, train_skipped
from rsi.scale.pool import Answers, SampleJob, Session
from rsi.tasks import Task, heldout_set
from rsi.tasks.guard import GuardedTask


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval for a binomial proportion."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _job(task: Task, difficulty: int, held: list[Problem], batch_size: int) -> SampleJob:
    return SampleJob([p.prompt for p in held], task.max_answer_chars(difficulty) + 1, batch_size=batch_size)


def evaluate_difficulty(session: Session, task: Task, difficulty: int, n: int, model_name: str,
                        batch_size: int = 256) -> EvalResult:
    """Greedy exact match on `heldout_set(task, difficulty, n)`; `n` of the result is its size."""
    held = heldout_set(task, difficulty, n)
    return _scored(task, difficulty, held, session.run([_job(task, difficulty, held, batch_size)])[0], model_name)


def _scored(task: Task, difficulty: int, held: list[Problem], outs: Answers, model_name: str) -> EvalResult:
    texts = [o[0].text for o in outs]
    per_problem = tuple(v.correct for v in task.verify_many(list(zip(held, texts, strict=True))))
    correct = sum(per_problem)
    lo, hi = wilson(correct, len(held))
    return EvalResult(model_name, difficulty, len(held), correct, lo, hi, per_problem,
                      tuple((p.id, t) for p, t in zip(held, texts, strict=True)))


def evaluate_ladder(session: Session, task: Task, difficulties: Iterable[int], n: int, model_name: str,
                    stop_after_zeros: int = 2, batch_size: int = 256,
                    on_difficulty: Callable[[EvalResult], None] | None = None, wave: int = 1) -> list[EvalResult]:
    """Evaluate difficulties in order, stopping after `stop_after_zeros` consecutive 0 % results.
    `wave` difficulties are sampled at a time (one job each, in parallel on a pool of that many
    workers); results past the stop are dropped, so the ladder is the same whatever the wave."""
    results, zeros, ladder = [], 0, list(difficulties)
    for k in range(0, len(ladder), wave):
        part = ladder[k:k + wave]
        helds = [heldout_set(task, d, n) for d in part]
        answers = session.run([_job(task, d, held, batch_size) for d, held in zip(part, helds, strict=True)])
        for d, held, outs in zip(part, helds, answers, strict=True):
            r = _scored(task, d, held, outs, model_name)
            results.append(r)
            if on_difficulty:
                on_difficulty(r)
            zeros = zeros + 1 if r.correct == 0 else 0
            if stop_after_zeros and zeros >= stop_after_zeros:
                return results
    return results


def _ladder(ctx: Context, task: GuardedTask, name: str, difficulties) -> list[EvalResult]:
    e = ctx.cfg.eval
    with ctx.pool.session(ctx.checkpoint(name), ctx.cfg.engine) as session, \
            bar(ctx.console, f"evaluate {name}", len(difficulties)) as advance:
        return evaluate_ladder(session, task, difficulties, e.problems_per_difficulty, name,
                               e.stop_after_zeros, ctx.cfg.generate.batch_size,
                               on_difficulty=lambda r: advance(1, f"d{r.difficulty} {r.accuracy:.0%}"),
                               wave=ctx.pool.workers)


def stage_evaluate(ctx: Context, cycle: int) -> None:
    e = ctx.cfg.eval
    ladder = list(range(e.min_difficulty, e.max_difficulty + 1))
    rows: list[EvalResult] = []
    task = GuardedTask(ctx.task, ctx.pool.verify)
    with timed() as cost:
        if cycle == 0:
            rows = _ladder(ctx, task, model_name(0), ladder)
        elif ctx.checkpoint(model_name(cycle)).exists() and not train_skipped(ctx.ledger, cycle):
            rows = _ladder(ctx, task, model_name(cycle), ladder)
            champ = champion(ctx.ledger)
            have = champion_results(ctx.ledger, champ)
            missing = [r.difficulty for r in rows if r.difficulty not in have]
            if missing:  # the champion stopped its ladder earlier: score it on the same problems
                rows += _ladder(ctx, task, champ, missing)
    with ctx.ledger.stage(cycle, "evaluate") as w:
        ctx.ledger.add_heldout([p for d in sorted({r.difficulty for r in rows})
                                for p in heldout_set(ctx.task, d, e.problems_per_difficulty)])
        for name in sorted({r.model for r in rows}):
            ctx.ledger.add_eval(cycle, name, [r for r in rows if r.model == name])
        if task.errors:
            ctx.ledger.add_metrics(cycle, "evaluate", task.metrics())
        w.cost(**cost)
