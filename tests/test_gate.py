import random

import pytest
from pydantic import ValidationError

from rsi.config import GateConfig
from rsi.records import EvalResult
from rsi.stages.evaluate import wilson
from rsi.stages.gate import decide


def res(model, d, per):
    return EvalResult(model, d, len(per), sum(per), 0.0, 1.0, tuple(per))


CFG = GateConfig(min_gain=0.01, confidence=0.95, max_regression=0.05)


def test_clear_gain_above_frontier_is_promoted():
    champ = [res("a", 1, [True] * 100), res("a", 2, [True] * 10 + [False] * 90)]
    cand = [res("b", 1, [True] * 100), res("b", 2, [True] * 60 + [False] * 40)]
    d = decide(champ, cand, champion_frontier=1, cfg=CFG)
    assert d.promote and abs(d.gain - 0.5) < 1e-9 and d.gain_lo > 0 and "on 100 problems" in d.reason


def test_regression_below_frontier_rolls_back_even_with_gain():
    champ = [res("a", 1, [True] * 100), res("a", 2, [False] * 100)]
    cand = [res("b", 1, [True] * 90 + [False] * 10), res("b", 2, [True] * 100)]
    d = decide(champ, cand, champion_frontier=1, cfg=CFG)
    assert not d.promote and "regressed 10.0% at difficulty 1" in d.reason


def test_noise_sized_gain_is_not_significant():
    champ = [res("a", 2, [True] * 50 + [False] * 50)]
    cand = [res("b", 2, [True] * 52 + [False] * 48)]
    d = decide(champ, cand, champion_frontier=1, cfg=CFG)
    assert not d.promote and "not significant" in d.reason


def test_too_few_distinct_problems_are_not_enough_to_promote():
    """Four problems all won would pass the confidence bound (variance 0): the gate says it needs more."""
    champ, cand = [res("a", 2, [False] * 4)], [res("b", 2, [True] * 4)]
    d = decide(champ, cand, champion_frontier=1, cfg=CFG)
    assert not d.promote and "only 4 distinct held-out problems" in d.reason and "gate.min_problems (20)" in d.reason
    assert decide(champ, cand, 1, CFG.model_copy(update={"min_problems": 4})).promote


def test_worse_candidate_is_never_promoted():
    champ = [res("a", 2, [True] * 30 + [False] * 70)]
    cand = [res("b", 2, [True] * 10 + [False] * 90)]
    assert not decide(champ, cand, 1, CFG).promote


def test_wilson_interval_contains_estimate_and_narrows():
    lo, hi = wilson(50, 100)
    assert lo < 0.5 < hi
    lo2, hi2 = wilson(500, 1000)
    assert hi2 - lo2 < hi - lo
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0


def test_property_a_worse_candidate_is_never_promoted_over_10000_outcomes():
    """Random ladders, frontiers, gate settings and candidates (each problem's result flipped with
    its own probability either way): whenever the candidate is not better above the frontier, or
    regressed beyond max_regression below it, the gate keeps the champion."""
    rng = random.Random(20261123)
    worse = promoted = 0
    for _ in range(10_000):
        cfg = GateConfig(min_gain=rng.choice([0.0, rng.uniform(0, 0.1)]), confidence=rng.uniform(0.5, 0.999),
                         max_regression=rng.choice([0.0, rng.uniform(0, 0.2)]), min_problems=rng.choice([1, 20]))
        frontier = rng.randint(0, 4)
        champ, cand = [], []
        for d in range(1, rng.randint(1, 6) + 1):
            n, p = rng.randint(1, 60), rng.random()
            base = [rng.random() < p for _ in range(n)]
            up, down = rng.random() * 0.3, rng.random() * 0.3
            new = [(not x and rng.random() < up) or (x and rng.random() >= down) for x in base]
            champ.append(res("champion", d, base))
            cand.append(res("candidate", d, new))
        above = [(a, b) for a, b in zip(champ, cand, strict=True) if a.difficulty > frontier]
        gain = sum(b.correct - a.correct for a, b in above)
        regressed = any(a.accuracy - b.accuracy > cfg.max_regression
                        for a, b in zip(champ, cand, strict=True) if a.difficulty <= frontier)
        decision = decide(champ, cand, frontier, cfg)
        if gain <= 0 or regressed:
            worse += 1
            assert not decision.promote, (champ, cand, frontier, cfg, decision)
        promoted += decision.promote
    assert worse > 5000 and promoted > 100  # both kinds occur: the property is not vacuous


def test_confidence_below_one_half_is_refused():
    """At confidence < 0.5 the one-sided bound lies above the gain, so an equal candidate could pass."""
    with pytest.raises(ValidationError):
        GateConfig(confidence=0.3)


def test_a_rollback_names_its_cause_when_the_cycle_had_nothing_new_to_learn_or_learnt_nothing():
    from rsi.records import Label, Problem
    from rsi.stages.stall import stall_cause

    probs = [Problem("sort", d, "train", i, f"s:{i}{d}=", "0", "generated") for i, d in enumerate((3, 3, 4, 5))]
    champ = [res("a", 4, [True, False, False]), res("a", 5, [False] * 3)]
    kept_below = [Label(probs[0].id, 0, "0", True, "verified", 1.0, True),
                  Label(probs[2].id, 0, "9", False, "rejected", 0.0, False)]
    same = [res("b", 4, [True, False, False]), res("b", 5, [False] * 3)]
    why = stall_cause(probs, kept_below, 3, champ, same)
    assert why.startswith("nothing new to learn: none of the 1 kept samples is above the frontier 3 (1 at 3)")
    assert "; nothing learnt: the candidate scored every held-out problem exactly as its champion did" in why
    kept_above = [*kept_below, Label(probs[3].id, 1, "0", True, "verified", 1.0, True)]
    moved = [res("b", 4, [True, True, False]), res("b", 5, [False] * 3)]
    assert stall_cause(probs, kept_above, 3, champ, moved) is None
    assert stall_cause(probs, kept_above, 3, champ, same).startswith("nothing learnt")
