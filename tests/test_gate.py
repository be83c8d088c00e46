from rsi.config import GateConfig
from rsi.evaluate import wilson
from rsi.gate import decide
from rsi.records import EvalResult


def res(model, d, per):
    return EvalResult(model, d, len(per), sum(per), 0.0, 1.0, tuple(per))


CFG = GateConfig(min_gain=0.01, confidence=0.95, max_regression=0.05)


def test_clear_gain_above_frontier_is_promoted():
    champ = [res("a", 1, [True] * 100), res("a", 2, [True] * 10 + [False] * 90)]
    cand = [res("b", 1, [True] * 100), res("b", 2, [True] * 60 + [False] * 40)]
    d = decide(champ, cand, champion_frontier=1, cfg=CFG)
    assert d.promote and abs(d.gain - 0.5) < 1e-9 and d.gain_lo > 0


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
