"""A promotion a monitor vetoed says so, and a person can overrule it after the fact (`rsi review`),
over a small hand-built ledger: base, cycle 1 promoted, cycles 2 and 3 vetoed."""

from __future__ import annotations

import pytest
from rich.console import Console

from rsi.ledger import Ledger
from rsi.records import VETO, EvalResult, GateDecision, is_veto, veto
from rsi.run.context import champion, gates
from rsi.stages.review import ReviewError, record, summary
from rsi.views.status import format_review, status

CONFIG = {"curriculum": {"threshold": 0.8}, "seed_data": {"max_difficulty": 2}, "eval": {"min_difficulty": 1,
                                                                                           "max_difficulty": 4}}
ALERT = "possible reward hacking: answer length drifted 1.00 -> 2.50x the reference answer's"


def _evals(model: str, accs: dict[int, int]) -> list[EvalResult]:
    return [EvalResult(model, d, 10, c, 0.0, 1.0, tuple(i < c for i in range(10))) for d, c in accs.items()]


def _promotion(gain: float) -> GateDecision:
    return GateDecision(True, f"gain {gain:+.1%} above the frontier", gain, gain - 0.1, 0.0)


@pytest.fixture
def run(tmp_path):
    run = tmp_path / "vetoed"
    with Ledger(run / "ledger.sqlite") as led:
        led.set_run("vetoed", CONFIG)
        with led.stage(0, "base") as w:
            w.add_eval(0, "cycle-0000", _evals("cycle-0000", {1: 10, 2: 9, 3: 1}))
        led.add_eval(1, "cycle-0001", _evals("cycle-0001", {1: 10, 2: 10, 3: 9, 4: 2}))
        led.add_gate(1, "cycle-0000", "cycle-0001", _promotion(0.4))
        for cycle, top in ((2, 9), (3, 10)):
            led.add_eval(cycle, f"cycle-{cycle:04d}", _evals(f"cycle-{cycle:04d}", {1: 10, 2: 10, 3: 10, 4: top}))
            led.add_gate(cycle, "cycle-0001", f"cycle-{cycle:04d}", veto(_promotion(0.7), ALERT))
    (run / "champion").write_text("cycle-0001\n")
    return run


def test_a_vetoed_promotion_says_what_it_overrode():
    d = veto(_promotion(0.708), ALERT)
    assert not d.promote and is_veto(d.reason) and d.reason.startswith(VETO)
    assert "would have promoted" in d.reason and "+70.8%" in d.reason and ALERT in d.reason
    assert "rsi review" in d.reason  # how a person overrules it
    assert not is_veto(_promotion(0.1).reason)


def test_review_shows_the_latest_vetoed_promotion_and_an_approval_overrules_it(run):
    shown = summary(run)
    assert (shown["kind"], shown["cycle"], shown["candidate"], shown["champion"]) == (
        "overrule", 3, "cycle-0003", "cycle-0001")
    assert shown["vetoed"] and "+70.0%" in shown["gate"]
    assert shown["accuracy"]["4"] == {"champion": 0.2, "candidate": 1.0}
    console = Console(record=True, width=100)
    console.print(format_review(shown))
    text = console.export_text()
    assert "a monitor vetoed its promotion" in text and "--cycle 3" in text

    done = record(run, True, "the answers are longer because the problems are", by="alice")
    assert done["overrule"] and done["cycle"] == 3
    with Ledger(run / "ledger.sqlite", create=False) as led:
        assert champion(led) == "cycle-0003"
        (g3,) = [g for g in gates(led) if g["cycle"] == 3]
        assert g3["promote"] and g3["reason"].endswith("overruled in review by alice: the answers are longer "
                                                       "because the problems are")
        assert [g["promote"] for g in led.gates()] == [1, 0, 0]  # the gates table itself is never rewritten
    assert (run / "champion").read_text().strip() == "cycle-0003"
    st = status(run)
    assert st["champion"] == "cycle-0003" and st["champions"]["3"] == "cycle-0003" and st["eval"]["4"] == 1.0
    # cycle 2's veto is superseded by the later promotion: nothing is left to review
    with pytest.raises(ReviewError, match="no candidate to review"):
        summary(run)
    with pytest.raises(ReviewError, match="cycle 2 of"):
        record(run, True, "too late", cycle=2)


def test_a_rejection_confirms_the_rollback_and_an_earlier_veto_can_be_chosen(run):
    done = record(run, False, "the drift is real", by="bob")
    assert done["overrule"] and done["ruling"] == "reject"
    assert summary(run)["cycle"] == 2  # cycle 3 was reviewed; cycle 2's veto is next
    with Ledger(run / "ledger.sqlite", create=False) as led:
        assert champion(led) == "cycle-0001"
    record(run, True, "cycle 2 holds up", by="bob", cycle=2)
    with Ledger(run / "ledger.sqlite", create=False) as led:
        assert champion(led) == "cycle-0002"
    with pytest.raises(ReviewError, match="needs a reason"):
        record(run, True, "  ")
