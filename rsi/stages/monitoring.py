"""The monitors' side of the stages: their inputs gathered from the ledger and the run's records,
read into `rsi.monitors` functions, and their alerts shown on the console."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from statistics import fmean, pstdev

from rsi.monitors import REASONS, decontamination, diversity, reward_hacking, sample_drift, verifier
from rsi.monitors.hacking import relative_length
from rsi.records import Label, Problem, Proposal, Reading, Sample
from rsi.run.context import Context, grpo_steps, heldout_problems, model_name, propose_facts
from rsi.tasks import problems
from rsi.tasks.guard import PREFIX as VERIFIER_ERROR


def alerted(ctx: Context, readings: list[Reading]) -> list[Reading]:
    for r in readings:
        if r.alert:
            ctx.console.print(f"[yellow]monitor {r.monitor}:[/] {r.message}")
    return readings


def decontaminated(ctx: Context, proposed: list[Problem]) -> tuple[list[Problem], dict[str, str]]:
    """The problems that overlap no held-out prompt, and {dropped problem id: 'exact' | 'ngram'}."""
    if not ctx.cfg.filter.decontaminate:
        return proposed, {}
    hits = {p.id: hit for p in proposed if (hit := ctx.heldout.hit(p.prompt))}
    return [p for p in proposed if p.id not in hits], hits


CHANCE_SAMPLE = 500  # fresh task problems per difficulty for a pooled task's chance overlap


def chance_overlap(ctx: Context, proposed: list[Problem]) -> tuple[float, float]:
    """What chance alone drops, as (mean, standard deviation): the shares of the same problems that
    overlap each of the held-out ladder's control sets, drawn like it from held-out items no run
    evaluates. Problems that crowd a small space's common items meet a control set as often as the
    held-out set, give or take how common the items each set happened to draw are (code_io 1-3, the
    commonest 60 programs: 51 % +- 8.5 % over 12 control sets, the held-out set 60 %); problems
    reproduced from the evaluation meet only the held-out set. A pooled task (a file's rows) has no
    unseen held-out items: there chance is the share of its fresh training problems at the same
    difficulties (up to `CHANCE_SAMPLE` each) that overlap the held-out set."""
    if not proposed:
        return 0.0, 0.0
    if not ctx.task.pooled:
        shares = [sum(c.hit(p.prompt) is not None for p in proposed) / len(proposed) for c in ctx.controls]
        return fmean(shares), pstdev(shares)
    counts = Counter(p.difficulty for p in proposed)
    reference = [q for d, k in sorted(counts.items()) for q in problems(ctx.task, d, "train", min(k, CHANCE_SAMPLE))]
    return sum(ctx.heldout.hit(q.prompt) is not None for q in reference) / len(reference), 0.0


def without_dropped(proposals: list[Proposal], dropped: dict[str, str]) -> list[Proposal]:
    """Self-play proposals less their dropped problems; one left with none is no longer valid."""
    out = []
    for q in proposals:
        ids = tuple(i for i in q.problem_ids if i not in dropped)
        if q.valid and not ids:
            q = replace(q, valid=False, reason=REASONS[dropped[q.problem_ids[0]]])
        out.append(replace(q, problem_ids=ids))
    return out


def decontamination_reading(ctx: Context, cycle: int, problems_: list[Problem], labels: list[Label]) -> Reading:
    """The propose stage's drops and the label stage's, each against its chance share: the propose
    stage's `chance_overlap`, and for samples the share of the accepted ones whose problem's true
    answer (what a perfect model would write) overlaps a held-out prompt."""
    propose = propose_facts(ctx.ledger, cycle)
    kinds = {reason: kind for kind, reason in REASONS.items()}
    dropped = Counter(kinds[lab.reason] for lab in labels if lab.reason in kinds)
    accepted = [lab for lab in labels if lab.kept or lab.reason in kinds or lab.reason.startswith("duplicate")]
    by_id = {p.id: p for p in problems_}
    hit = {i: ctx.heldout.hit(by_id[i].prompt) or ctx.heldout.hit(by_id[i].answer)
           for i in {lab.problem_id for lab in accepted}} if ctx.cfg.filter.decontaminate else {}
    sample_chance = sum(hit.get(lab.problem_id) is not None for lab in accepted) / len(accepted) if accepted else 0.0
    return decontamination(propose.contaminated, propose.checked, dict(dropped), len(accepted), ctx.cfg.monitors,
                           (propose.chance_contaminated, sample_chance), propose.chance_spread)


def diversity_reading(ctx: Context, todo: list[Problem], samples: list[Sample]) -> Reading:
    """This cycle's problems against as many of the task's own, and the champion's first answer to
    each against the true answers."""
    first = {s.problem_id: s.completion for s in samples if s.index == 0}
    counts = Counter(p.difficulty for p in todo)
    reference = [p.prompt for d, k in sorted(counts.items()) for p in problems(ctx.task, d, "train", k)]
    answered = [p for p in todo if p.id in first]
    return diversity([p.prompt for p in todo], reference, [first[p.id] for p in answered],
                     [p.answer for p in answered], ctx.cfg.monitors)


def hacking_reading(ctx: Context, cycle: int, gain: float | None) -> Reading:
    """From the cycle's GRPO steps (the champion's own), else from the candidate's held-out answers
    against the base model's on the same problems (`heldout_stats`)."""
    steps = [s for _, s in grpo_steps(ctx.ledger.metrics(), cycle) if s.member == 0]
    if steps:
        return reward_hacking(steps, gain, ctx.cfg.monitors)
    cand, base = heldout_stats(ctx, model_name(cycle), model_name(0))
    if cand is None or cycle == 0:
        return Reading("reward_hacking", {"steps": 0, "compared": 0, "signals": []}, False,
                       "no GRPO this cycle, and no candidate's held-out answers to compare")
    return sample_drift(cand[0], cand[1], base, ctx.cfg.monitors)


def heldout_stats(ctx: Context, model: str, baseline: str
                  ) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """(mean length relative to the reference answer (`relative_length`), well-formed share) of
    `model`'s latest held-out answers and of `baseline`'s, over the held-out problems `baseline`
    answered correctly. Like with like: the same problems, ones a sound model keeps getting right,
    whatever difficulty the curriculum has reached since (a model's own samples past a moving
    frontier read an honest model as drifting: the default run lost two cycles to "well-formed
    answers fell 70% -> 49%" on problems 17 difficulties harder than the first cycle's)."""
    answers: dict[str, dict[str, str]] = {model: {}, baseline: {}}
    solved: set[str] = set()
    for r in ctx.ledger.eval_answers():
        if r["model"] in answers:
            answers[r["model"]][r["problem_id"]] = r["completion"]
        if r["model"] == baseline and r["correct"]:
            solved.add(r["problem_id"])
    common = sorted(answers[model].keys() & solved)
    if not common:
        return None, None
    by_id = {p.id: p for p in heldout_problems(ctx.cfg, ctx.task)}

    def stats(name: str) -> tuple[float, float]:
        got = [(by_id[i], answers[name][i]) for i in common]
        return (fmean(relative_length(c, p.answer) for p, c in got),
                fmean(float(ctx.task.well_formed(p, c)) for p, c in got))

    return stats(model), stats(baseline)


def verifier_reading(ctx: Context, cycle: int) -> Reading:
    """Samples the verifier raised on in this cycle's propose (self-play checks), label, GRPO
    (the accuracy reward) and evaluate stages, and those each other reward function of GRPO raised
    on (as `reward NAME`), from their metrics."""
    errors, first = {}, ""
    for x in ctx.ledger.metrics():
        if x["cycle"] != cycle:
            continue
        m, stage = x["metrics"], x["stage"]
        if stage == "propose":
            counts = {stage: m.get("dropped", {}).get(VERIFIER_ERROR, 0)}
        elif stage == "grpo":
            counts = {}
            for _, step in grpo_steps([x]):
                for name, r in step.rewards.items():
                    key = stage if name == "accuracy" else f"reward {name}"
                    counts[key] = counts.get(key, 0) + r.errors
                    if r.errors and r.first_error:
                        first = first or f"{key}: {r.first_error}"
        else:
            counts = {stage: m.get("verifier_errors", 0)}
        for key, n in counts.items():
            errors[key] = errors.get(key, 0) + n
        first = first or m.get("first_verifier_error", "")
    return verifier({s: n for s, n in errors.items() if n}, first)
