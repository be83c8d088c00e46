"""Why a cycle made no progress, said in its gate decision's reason (and so in the cycle's line,
`rsi status`, the report and the console): a rollback is easy to read as bad luck when its cause is
structural and every later cycle will roll back the same way.

Two causes are checked, from what the ledger holds, after the gate decided to keep the champion:
- nothing new to learn: none of the cycle's kept samples is above the champion's frontier;
- nothing learnt: the candidate answered every held-out problem exactly as its champion did.
"""

from __future__ import annotations

from collections import Counter

from rsi.records import EvalResult, Label, Problem


def stall_cause(problems: list[Problem], labels: list[Label], frontier: int, champion: list[EvalResult],
                candidate: list[EvalResult]) -> str | None:
    """What kept the cycle from progress, as a sentence, or None when neither cause holds."""
    causes = []
    difficulty = {p.id: p.difficulty for p in problems}
    kept = Counter(difficulty.get(lab.problem_id) for lab in labels if lab.kept)
    above = sum(n for d, n in kept.items() if d is not None and d > frontier)
    if kept and not above:
        where = ", ".join(f"{n} at {d}" for d, n in sorted(kept.items(), key=lambda x: x[0] or 0))
        causes.append(f"nothing new to learn: none of the {sum(kept.values())} kept samples is above the frontier "
                      f"{frontier} ({where}); widen curriculum.width, or raise generate.samples_per_problem or "
                      "generate.temperature so that some answers above it pass")
    champ = {r.difficulty: r.per_problem for r in champion}
    cand = {r.difficulty: r.per_problem for r in candidate}
    if cand and all(champ.get(d) == answers for d, answers in cand.items()):
        causes.append("nothing learnt: the candidate scored every held-out problem exactly as its champion did "
                      "(check train.steps and train.lr, and whether the kept data teaches anything new)")
    return "; ".join(causes) or None
