"""Labelers and filters: turn a cycle's samples into kept training targets, each with a reason.

For every sample, in order:
1. `well_formed` (optional): the task's format/length check, which never reads the ground truth.
2. The labeler decides the target:
   - `verifier`: keep a sample its task's verifier accepts.
   - `vote`: no verifier is consulted. The most common well-formed answer among a problem's
     samples becomes the label if at least `vote_threshold` of all its samples agree on it; the
     samples that gave it are kept. With `label.friends` > 0 a problem's samples come from an
     ensemble (the champion and its independently seeded friends), so the vote is across models.
3. `decontaminate` (optional): drop a kept sample whose problem prompt or completion overlaps a
   held-out evaluation set (`contaminated`, e.g. `rsi.monitors.HeldoutIndex.hit`).
4. `dedup` (optional): keep one sample per (prompt, answer).
5. `filter.custom`: each further filter (`FILTERS`: an entry point in `rsi.filters` or
   `path/to/file.py:function`) is `fn(problem, answer) -> reason | None`; a reason drops the sample.

Every label also records `audit_correct`, the answer's true correctness from the task's
verifier; it is an audit column for reports, and training never reads it. The label audit also
counts people's verdicts on earlier kept labels (`rsi.run.human_labels`). Each sample is verified
once: the verifier labeler's verdicts are the audit's (`Verdicts`), so a code task runs each
sample in the sandbox once per cycle.

A labeler is `fn(verify, problem, samples, n_drawn, cfg) -> {sample index: (kept, reason,
agreement)}`, registered in `LABELERS`; `verify(problem, samples)` gives the verifier's verdicts
(the vote labeler never calls it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from rsi.config import FilterConfig, LabelConfig
from rsi.monitors import label_audit
from rsi.monitors.overlap import REASONS
from rsi.records import Label, Problem, Sample, Verdict
from rsi.registry import Registry
from rsi.run.context import Context, timed
from rsi.run.human_labels import people_on_kept
from rsi.stages.monitoring import alerted, decontamination_reading, diversity_reading
from rsi.tasks import Task
from rsi.tasks.guard import GuardedTask

Verify = Callable[[Problem, list[Sample]], list[Verdict]]
# (verify, problem, well-formed samples, number of samples drawn, cfg) -> {sample index: (kept, reason, agreement)}
Labeler = Callable[[Verify, Problem, list[Sample], int, LabelConfig], dict[int, tuple[bool, str, float]]]
LABELERS: Registry[Labeler] = Registry("labeler")
Filter = Callable[[Problem, str], str | None]  # (problem, answer) -> why a kept sample is dropped, or None
FILTERS: Registry[Filter] = Registry("filter")


class Verdicts:
    """The task's verdicts on a cycle's samples, each sample verified at most once (in batches, so
    code tasks run in parallel). The answer verified is the completion less trailing whitespace."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self._got: dict[tuple[str, int], Verdict] = {}

    def __call__(self, problem: Problem, samples: list[Sample]) -> list[Verdict]:
        return self.many([(problem, s) for s in samples])

    def many(self, pairs: list[tuple[Problem, Sample]]) -> list[Verdict]:
        todo = list({(p.id, s.index): (p, s) for p, s in pairs if (p.id, s.index) not in self._got}.values())
        verdicts = self.task.verify_many([(p, answer_of(s)) for p, s in todo])
        for (p, s), v in zip(todo, verdicts, strict=True):
            self._got[(p.id, s.index)] = v
        return [self._got[(p.id, s.index)] for p, s in pairs]


def answer_of(s: Sample) -> str:
    return s.completion.rstrip()  # leading spaces are code: an induction body starts " y = x"


def verifier_labeler(verify, problem, samples, n_drawn, cfg):
    out = {}
    for s, v in zip(samples, verify(problem, samples), strict=True):
        out[s.index] = (v.correct, "verified" if v.correct else f"rejected by verifier: {v.reason}", float(v.correct))
    return out


def vote_labeler(verify, problem, samples, n_drawn, cfg):
    votes = Counter(s.completion.strip() for s in samples)
    if not votes:
        return {}
    top, count = votes.most_common(1)[0]
    share = count / n_drawn
    out = {}
    for s in samples:
        if share < cfg.vote_threshold:
            out[s.index] = (False, f"no majority: top answer has {count}/{n_drawn} < {cfg.vote_threshold:.0%}", share)
        elif s.completion.strip() == top:
            out[s.index] = (True, f"majority {count}/{n_drawn}", share)
        else:
            out[s.index] = (False, f"disagrees with majority {count}/{n_drawn}", share)
    return out


LABELERS.register("verifier", verifier_labeler)
LABELERS.register("vote", vote_labeler)


def label_samples(task: Task, problems: list[Problem], samples: list[Sample], label_cfg: LabelConfig,
                  filter_cfg: FilterConfig, contaminated: Callable[[str], str | None]) -> list[Label]:
    """One Label per sample, in sample order. `contaminated(text)` names how a text overlaps a
    held-out set ('exact', 'ngram') or returns None."""
    labeler = LABELERS.resolve_called(label_cfg.labeler)
    custom = [FILTERS.resolve_called(ref) for ref in filter_cfg.custom]
    by_problem: dict[str, list[Sample]] = {}
    for s in samples:
        by_problem.setdefault(s.problem_id, []).append(s)
    decisions: list[tuple[Problem, Sample, str, bool, str, float]] = []
    seen: set[tuple[str, str]] = set()
    verdicts = Verdicts(task)
    # every sample is verified (for the audit, and by the verifier labeler): in one batch, so code runs
    # in parallel (and on a pool's workers) and no labeler call waits on its own small one
    verdicts.many([(p, s) for p in problems for s in by_problem.get(p.id, [])])
    for p in problems:
        drawn = by_problem.get(p.id, [])
        formed = [s for s in drawn if not filter_cfg.well_formed or task.well_formed(p, s.completion)]
        decided = labeler(verdicts, p, formed, len(drawn), label_cfg)
        for s in drawn:
            answer = answer_of(s)
            kept, reason, agreement = decided.get(s.index, (False, "malformed: fails the task's format check", 0.0))
            if kept and filter_cfg.decontaminate:
                hit = contaminated(p.prompt) or contaminated(answer)
                if hit:
                    kept, reason = False, REASONS[hit]
            if kept and filter_cfg.dedup:
                if (p.prompt, answer) in seen:
                    kept, reason = False, "duplicate of a kept sample"
                seen.add((p.prompt, answer))
            for drop in custom if kept else ():
                if why := drop(p, answer):
                    kept, reason = False, str(why)
                    break
            decisions.append((p, s, answer, kept, reason, agreement))
    audits = verdicts.many([(p, s) for p, s, *_ in decisions])
    return [Label(p.id, s.index, answer, kept, reason, agreement, audit_correct=v.correct)
            for (p, s, answer, kept, reason, agreement), v in zip(decisions, audits, strict=True)]


def stage_label(ctx: Context, cycle: int) -> None:
    """Label the cycle's samples, then take the label-side monitor readings: decontamination,
    label audit (below its floor the cycle's labels are all un-kept) and diversity."""
    m = ctx.cfg.monitors
    with timed() as cost:
        todo, samples = ctx.ledger.problems(cycle=cycle), ctx.ledger.samples(cycle)
        task = GuardedTask(ctx.task, ctx.pool.verify)
        labels = label_samples(task, todo, samples, ctx.cfg.label, ctx.cfg.filter, ctx.heldout.hit)
        audit = label_audit(labels, ctx.cfg.label.labeler, m, people_on_kept(ctx.ledger, cycle))
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
