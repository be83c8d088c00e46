"""Ledger: round trips, one transaction per stage, refusal of duplicates, newer and corrupt files."""

from __future__ import annotations

import random
import sqlite3
from dataclasses import replace

import pytest

from rsi.errors import LedgerError
from rsi.ledger import SCHEMA_VERSION, Ledger
from rsi.records import EvalResult, Example, GateDecision, Label, Problem, Sample


def _problem(seed: int, difficulty: int = 3, prompt: str | None = None, source: str = "generated") -> Problem:
    return Problem(task="addition", difficulty=difficulty, split="train", seed=seed,
                   prompt=prompt or f"{seed}+1=", answer=str(seed + 1), source=source)


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "run" / "ledger.sqlite") as led:
        yield led


def test_round_trips(ledger):
    ledger.set_run("demo", {"curriculum": {"threshold": 0.9}})
    ledger.set_run("demo", {"ignored": True})  # same name again (a resume) is a no-op
    probs = [_problem(1), _problem(2, difficulty=4), _problem(3, source="human")]
    samples = [Sample(probs[0].id, 0, "2", 2), Sample(probs[0].id, 1, "3", 2), Sample(probs[1].id, 0, "3", 1)]
    labels = [Label(probs[0].id, 0, "2", True, "majority", 0.5, True),
              Label(probs[0].id, 1, "2", True, "majority", 0.5, None),
              Label(probs[1].id, 0, "3", False, "no agreement", 0.0, False)]
    results = [EvalResult("cycle-0001", 1, 3, 2, 0.2, 0.9, (True, False, True)),
               EvalResult("cycle-0001", 2, 2, 0, 0.0, 0.6, (False, False))]
    decision = GateDecision(True, "gain +10.0% above the frontier", 0.1, 0.02, 0.0)
    with ledger.stage(1, "propose") as w:
        w.add_problems(1, probs)
        w.add_samples(1, "cycle-0000", samples)
        w.add_labels(1, labels)
        w.add_eval(1, "cycle-0001", results)
        w.add_gate(1, "cycle-0000", "cycle-0001", decision)
        w.add_metrics(1, "label", {"kept_fraction": 2 / 3})
        w.cost(wall_s=2.0, cpu_s=3.0, generated_tokens=5, train_sequences=7, train_tokens=11, device="cpu")

    info = ledger.run_info()
    assert info["name"] == "demo" and info["config"] == {"curriculum": {"threshold": 0.9}}
    assert ledger.problems() == probs
    assert ledger.problems(cycle=1, split="train") == probs and ledger.problems(cycle=2) == []
    assert ledger.samples(1) == [replace(s, model="cycle-0000") for s in samples]  # a sample carries its model
    assert ledger.labels(1) == labels
    assert ledger.eval_results(1, "cycle-0001") == results
    [row] = ledger.evals(model="cycle-0001")[1:]
    assert row["accuracy"] == 0.0 and row["per_problem"] == (False, False) and row["cycle"] == 1
    assert ledger.evals()[0]["per_problem"] == (True, False, True)
    [gate] = ledger.gates()
    assert gate == {"cycle": 1, "champion": "cycle-0000", "candidate": "cycle-0001", "promote": True,
                    "reason": decision.reason, "gain": 0.1, "gain_lo": 0.02, "worst_regression": 0.0}
    assert ledger.metrics() == [{"cycle": 1, "stage": "label", "metrics": {"kept_fraction": 2 / 3}}]
    [cost] = ledger.costs()
    assert (cost["wall_s"], cost["cpu_s"], cost["generated_tokens"], cost["train_sequences"],
            cost["train_tokens"], cost["extra"]) == (2.0, 3.0, 5, 7, 11, {"device": "cpu"})
    # Two kept labels with the same (prompt, answer) give one example; rejected labels none.
    assert ledger.accepted_examples() == [Example(probs[0].prompt, "2", 3, "self")]


def test_accepted_examples_order_origin_and_upto(ledger):
    a, h, b = _problem(5), _problem(6, source="human"), _problem(7, prompt="5+1=")  # b repeats a's prompt
    with ledger.stage(1, "label"):
        ledger.add_problems(1, [a, h])
        ledger.add_labels(1, [Label(h.id, 0, "7", True, "vote"), Label(a.id, 0, "6", True, "vote")])
    with ledger.stage(2, "label"):
        ledger.add_problems(2, [b])
        ledger.add_labels(2, [Label(b.id, 0, "6", True, "vote"), Label(b.id, 1, "8", True, "vote")])
    got = ledger.accepted_examples()
    # cycle 1 first, by problem id (…/5 before …/6); b's "6" duplicates a's (prompt, answer).
    assert [(e.prompt, e.answer, e.origin) for e in got] == [
        ("5+1=", "6", "self"), ("6+1=", "7", "human"), ("5+1=", "8", "self")]
    assert len(ledger.accepted_examples(upto_cycle=1)) == 2
    assert [c for c, _ in ledger.accepted()] == [1, 1, 2]
    rows = ledger.accepted_rows()
    assert list(rows) == got and rows[-1] == got[-1] and list(rows.cycles) == [1, 1, 2]
    replay, new = rows.split(2)
    assert list(replay) == got[:2] and list(new) == got[2:] and len(rows.split(3)[1]) == 0


def test_accepted_rows_match_the_definition_on_random_labels(ledger):
    """Over random kept labels with repeated prompts and answers, `accepted_rows` and its split
    give what the definition does: one example per (prompt, answer), the first kept, in order of
    (cycle, problem id, sample index); new = first kept in the cycle, replay = before it."""
    rng = random.Random(0)
    labels = []  # (cycle, problem, sample index, answer, kept)
    for cycle in range(1, 6):
        probs = [_problem(100 * cycle + i, prompt=f"{rng.randrange(15)}+1=") for i in range(12)]
        with ledger.stage(cycle, "label"):
            ledger.add_problems(cycle, probs)
            batch = [Label(p.id, j, str(rng.randrange(3)), rng.random() < 0.6, "vote") for p in probs for j in range(3)]
            rng.shuffle(batch)  # insertion order must not matter
            ledger.add_labels(cycle, batch)
        labels += [(cycle, p, lab) for lab in batch for p in probs if p.id == lab.problem_id]
    expected, seen = [], set()
    for cycle, p, lab in sorted(labels, key=lambda t: (t[0], t[1].id, t[2].sample_index)):
        if lab.kept and (p.prompt, lab.answer) not in seen:
            seen.add((p.prompt, lab.answer))
            expected.append((cycle, Example(p.prompt, lab.answer, p.difficulty, "self")))
    assert len(expected) > 20 and len(expected) < sum(lab.kept for *_, lab in labels)  # duplicates were dropped
    assert ledger.accepted() == expected
    for cycle in range(1, 6):
        replay, new = ledger.accepted_rows(upto_cycle=cycle).split(cycle)
        assert list(replay) == [ex for c, ex in expected if c < cycle]
        assert list(new) == [ex for c, ex in expected if c == cycle]


def test_stage_rollback_on_exception(ledger):
    with pytest.raises(RuntimeError, match="boom"):
        with ledger.stage(1, "generate") as w:
            w.add_problems(1, [_problem(1)])
            w.add_samples(1, "cycle-0000", [Sample(_problem(1).id, 0, "2", 1)])
            w.add_metrics(1, "generate", {"x": 1})
            raise RuntimeError("boom")
    assert not ledger.is_done(1, "generate")
    assert ledger.problems() == [] and ledger.samples(1) == [] and ledger.metrics() == []
    assert ledger.costs() == [] and ledger.completed_stages() == []
    with ledger.stage(1, "generate") as w:  # the stage can be redone, and the same ids are fine now
        w.add_problems(1, [_problem(1)])
    assert ledger.completed_stages() == [(1, "generate")] and len(ledger.problems()) == 1


def test_duplicates_raise(ledger):
    with ledger.stage(0, "base") as w:
        w.cost(wall_s=1.0)
    with ledger.stage(1, "propose"):
        ledger.add_problems(1, [_problem(1)])
    with pytest.raises(LedgerError, match="already completed"):
        with ledger.stage(1, "propose"):
            pass
    with pytest.raises(LedgerError, match="addition/train/3/1"):
        ledger.add_problems(2, [_problem(2), _problem(1)])  # same id, other cycle
    assert [p.seed for p in ledger.problems()] == [1]  # outside a stage a failed call adds nothing
    ledger.add_samples(1, "m", [Sample("p", 0, "x", 1)])
    with pytest.raises(LedgerError, match="already in cycle 1"):
        ledger.add_samples(1, "m", [Sample("p", 0, "y", 1)])
    ledger.add_samples(2, "m", [Sample("p", 0, "y", 1)])  # same sample index, other cycle: fine
    with pytest.raises(LedgerError, match="belongs to run 'a'"):
        ledger.set_run("a", {})
        ledger.set_run("b", {})
    with pytest.raises(LedgerError, match="do not nest"):
        with ledger.stage(2, "propose"):
            with ledger.stage(2, "generate"):
                pass
    assert ledger.completed_stages() == [(0, "base"), (1, "propose")]


def test_stage_measures_time_when_cost_not_given(ledger):
    import time

    with ledger.stage(3, "train") as w:
        time.sleep(0.2)  # wall time, no CPU
        busy = time.process_time() + 0.1
        while time.process_time() < busy:  # 0.1 s of this process's CPU
            pass
        w.cost(train_tokens=9)
    [row] = ledger.costs()
    assert row["wall_s"] >= 0.3 and 0.1 <= row["cpu_s"] < row["wall_s"] and row["train_tokens"] == 9
    assert row["generated_tokens"] == 0 and row["finished_at"].endswith("+00:00")


def test_reopen_keeps_rows_and_is_wal(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as led:
        with led.stage(0, "base"):
            led.add_problems(0, [_problem(1)])
    with Ledger(path, create=False) as led:
        assert led.is_done(0, "base") and led.problems() == [_problem(1)]
        assert led._con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_create_false_on_missing_file_raises_and_creates_nothing(tmp_path):
    path = tmp_path / "nope" / "ledger.sqlite"
    with pytest.raises(LedgerError, match=str(path)):
        Ledger(path, create=False)
    assert not path.exists() and not path.parent.exists()


def test_newer_schema_raises_and_leaves_file_untouched(tmp_path):
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(LedgerError) as err:
        Ledger(path)
    msg = str(err.value)
    assert str(path) in msg and f"version {SCHEMA_VERSION + 1}" in msg
    assert f"version {SCHEMA_VERSION}," in msg and "upgrade rsi" in msg
    assert path.read_bytes() == before


def test_garbage_file_raises_naming_path(tmp_path):
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"this is not sqlite at all \x00\xff" * 200)
    before = path.read_bytes()
    for create in (True, False):
        with pytest.raises(LedgerError, match="not a readable rsi ledger") as err:
            Ledger(path, create=create)
        assert str(path) in str(err.value)
    assert path.read_bytes() == before


def test_truncated_file_raises_ledger_error(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as led:
        led.add_problems(0, [_problem(i, prompt="x" * 500) for i in range(200)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(LedgerError, match=str(path)):
        with Ledger(path, create=False) as led:
            led.problems()


def test_other_sqlite_database_is_not_a_ledger(tmp_path):
    path = tmp_path / "other.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.close()
    with pytest.raises(LedgerError, match="not an rsi ledger"):
        Ledger(path)
