"""Graders are total: whatever a sandboxed program prints, grading returns a verdict, never raises,
and never scores a wrong value correct; a verifier that raises scores that sample 0, is counted,
and the run goes on (issue 17)."""

from __future__ import annotations

import json
import math

import pytest
from conftest import TEST_LIMITS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rsi.learn.rewards import load_reward, score
from rsi.ledger import Ledger
from rsi.monitors import verifier
from rsi.records import Label, Problem, Verdict
from rsi.sandbox.grading import MAX_DEPTH, MAX_DIGITS, MAX_REASON, clean, grade_function, same
from rsi.sandbox.limits import Execution
from rsi.tasks import get_task
from rsi.tasks.base import Task
from rsi.tasks.guard import GuardedTask, verify_guarded
from rsi.tasks.selfplay import _value

TOKEN = "@@rsi-0123456789abcdef@@"
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=4), kids, max_size=4),
                    max_leaves=20)


def _ex(stdout: str, stderr: str = "", killed=None) -> Execution:
    return Execution(0, None, killed, stdout, stderr, False, False, 0.01, 0.01, 1.0, TEST_LIMITS)


def _line(value) -> str:
    return TOKEN + json.dumps(value) + "\n"


def _truly_equal(got, want: int) -> bool:
    """An int answer, by the rule: an int or a float equal to it exactly; never a bool."""
    return type(got) in (int, float) and got == want


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.lists(st.integers(), min_size=1, max_size=3))
def test_arbitrary_bytes_never_raise_and_never_pass(raw, expected):
    text = raw.decode("utf-8", "surrogateescape")  # what a program may write, lone surrogates included
    for stdout in (text, TOKEN + text, text + "\n" + TOKEN + text):
        graded = grade_function(_ex(stdout, stderr=text), TOKEN, expected)
        assert not graded.correct or (stdout.endswith(TOKEN + text) and graded.correct == (
            json.loads(text) == [{"value": e} for e in expected]))
        graded.reason.encode("utf-8")  # storable
        assert len(graded.reason) <= MAX_REASON


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(JSON, min_size=1, max_size=3), st.lists(st.integers(), min_size=1, max_size=3))
def test_arbitrary_json_never_raises_and_passes_only_true_answers(got, expected):
    results = [{"value": g} for g in got]
    graded = grade_function(_ex(_line(results)), TOKEN, expected)
    truth = len(got) == len(expected) and all(_truly_equal(g, e) for g, e in zip(got, expected, strict=False))
    assert graded.correct == truth
    graded.reason.encode("utf-8")


@settings(max_examples=200)
@given(st.integers(min_value=-(10**30), max_value=10**30), st.integers(min_value=1, max_value=10**6))
def test_a_near_miss_of_an_integer_never_passes(want, k):
    for got in (want + k, want - k, float(want + k) if float(want + k) != want else want + k):
        assert not same(got, want)


def test_the_reported_counterexamples():
    assert not same(float(2**60), 2**60 + 1) and not same(9e-7, 0)
    assert same(float(2**60), 2**60) and same(3.0, 3) and not same(True, 1) and not same(1, True)
    assert same(0.1 + 0.2, 0.3) and same(10, 10.0000001) and not same(10**400, 1.5)  # float expected: tolerance
    deep = "[" * 5000 + "]" * 5000
    huge = "9" * (MAX_DIGITS + 1)
    for body in (deep, f"[{{\"value\": {huge}}}]", "[{\"value\": 1e999999}]", "[" * (MAX_DEPTH + 2) + "]" *
                 (MAX_DEPTH + 2), '[{"error": "\\ud800"}]'):
        graded = grade_function(_ex(TOKEN + body + "\n"), TOKEN, [5])
        assert not graded.correct
        graded.reason.encode("utf-8")
    assert "1000 digits" in grade_function(_ex(f"{TOKEN}[{{\"value\": {huge}}}]"), TOKEN, [1]).reason
    assert grade_function(_ex(TOKEN + f'[{{"value": "{huge}"}}]'), TOKEN, [huge]).correct  # a string of digits is fine
    assert clean("a\ud800b") == "a?b" and len(clean("x" * 1000)) == MAX_REASON


def test_self_plays_value_is_total():
    for body in ('[{"value": ' + "9" * 5000 + "}]", "[" * 3000 + "]" * 3000, '[{"error": "\\udfff"}]', "[1]", "{}"):
        reason = _value(_ex(TOKEN + body), TOKEN)
        assert isinstance(reason, str)
        reason.encode("utf-8")
    assert _value(_ex(TOKEN + '[{"value": 7}]'), TOKEN) == 7


class Fragile(Task):
    """A task whose verifier raises on answers containing 'boom' and returns junk for 'junk'."""

    name, description, difficulty_meaning, max_difficulty, alphabet = "fragile", "", "", 3, "ab"

    def generate(self, rng, difficulty):
        return "q", "a"

    def max_answer_chars(self, difficulty):
        return 4

    def verify(self, problem, completion):
        if "boom" in completion:
            raise RecursionError("maximum recursion depth exceeded")
        if "surrogate" in completion:
            return Verdict(0.0, False, "bad \ud800 reason")
        return Verdict(float(completion == "a"), completion == "a", "checked")

    def verify_many(self, pairs):
        if any("junk" in c for _, c in pairs):
            return None
        return [self.verify(p, c) for p, c in pairs]


def test_a_raising_verifier_scores_that_sample_zero_and_is_counted():
    p = Problem("fragile", 1, "train", 0, "q", "a")
    task = GuardedTask(Fragile())
    out = task.verify_many([(p, "a"), (p, "boom"), (p, "b"), (p, "surrogate"), (p, "junk")])
    assert [v.correct for v in out] == [True, False, False, False, False]
    assert [v.error for v in out] == [False, True, False, False, True]
    assert out[1].reason == "verifier error: RecursionError: maximum recursion depth exceeded"
    assert out[3].reason == "bad ? reason"
    assert task.errors == 2 and task.metrics()["first_verifier_error"].startswith("verifier error: RecursionError")
    assert task.name == "fragile" and task.max_answer_chars(1) == 4  # everything else is the task's own


def test_the_accuracy_reward_counts_verifier_errors(monkeypatch):
    import rsi.learn.rewards as rewards

    p = Problem("fragile", 1, "train", 0, "q", "a")
    monkeypatch.setattr(rewards, "get_task", lambda name: Fragile())
    scores = score([load_reward("accuracy", 1.0)], ["a", "boom", "b"], [p, p, p])
    assert scores.components["accuracy"] == [1.0, 0.0, 0.0] and scores.errors["accuracy"] == 1


def test_the_verifier_monitor_alerts_on_any_error_and_only_then():
    quiet = verifier({}, "")
    assert not quiet.alert
    loud = verifier({"label": 2, "grpo": 1}, "verifier error: ValueError: x")
    assert loud.alert and "3 sample(s)" in loud.message and "label 2, grpo 1" in loud.message


def test_the_ledger_stores_any_reason(tmp_path):
    """A reason that reaches the ledger uncleaned (a lone surrogate) is stored, not an error."""
    led = Ledger(tmp_path / "ledger.sqlite")
    p = Problem("addition", 1, "train", 0, "1+1=", "2")
    led.add_problems(1, [p])
    led.add_labels(1, [Label(p.id, 0, "2\ud800", True, "rejected: \udcff", 1.0, audit_correct=False)])
    lab = led.labels(1)[0]
    assert lab.reason == "rejected: ?" and lab.answer == "2?"


@pytest.mark.parametrize("text", ["9" * 41, "-" + "9" * 5000])
def test_code_io_deduction_with_huge_numbers_is_a_verdict(text):
    task = get_task("code_io_deduction")
    from rsi.tasks import problem

    p = problem(task, 2, "train", 0)
    v = verify_guarded(task, [(p, text)])[0]
    assert not v.correct and not v.error
    assert not math.isnan(v.reward)


def test_a_run_whose_verifier_raises_on_some_answers_goes_on_and_says_so(tmp_path, monkeypatch):
    """One cycle of `quick` with GRPO, its sort verifier raising on every answer of a length divisible by 3:
    label, GRPO rewards and evaluation score those 0, count them, the `verifier` monitor alerts, and
    the cycle reaches its gate."""
    from rich.console import Console

    from rsi.config import load_config
    from rsi.ledger import Ledger
    from rsi.loop import start

    sort = type(get_task("sort"))
    real = sort.verify

    def fragile(self, problem, completion):
        if len(completion.strip()) % 3 == 0:
            raise RecursionError("maximum recursion depth exceeded")
        return real(self, problem, completion)

    monkeypatch.setattr(sort, "verify", fragile)
    cfg = load_config("quick", ["loop.cycles=1", "base.steps=150", "train.steps=20", "eval.problems_per_difficulty=20",
                                "propose.problems_per_difficulty=20", "grpo.steps=2", "grpo.prompts_per_step=4",
                                "grpo.group_size=4", "eval.max_difficulty=5"])
    run = start(cfg, tmp_path / "fragile", Console(quiet=True))
    with Ledger(run / "ledger.sqlite") as led:
        metrics = {(m["cycle"], m["stage"]): m["metrics"] for m in led.metrics()}
        readings = {r["monitor"]: r for r in led.readings() if r["cycle"] == 1}
        assert [g["cycle"] for g in led.gates()] == [1]
    assert metrics[(1, "label")]["verifier_errors"] > 0
    assert metrics[(1, "label")]["first_verifier_error"] == ("verifier error: RecursionError: "
                                                             "maximum recursion depth exceeded")
    assert sum(s["reward/accuracy/errors"] for s in metrics[(1, "grpo")]["steps"]) > 0
    assert metrics[(0, "evaluate")]["verifier_errors"] > 0
    v = readings["verifier"]
    assert v["alert"] and v["value"]["errors"]["label"] == metrics[(1, "label")]["verifier_errors"]
    assert "grpo" in v["value"]["errors"] and "evaluate" in v["value"]["errors"]


PRINTABLE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from("0123456789-\n ()"),
                    max_size=80)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(PRINTABLE, min_size=1, max_size=6))
def test_the_code_tasks_verifiers_return_a_verdict_for_any_completion(sandbox, completions):
    """Any text as a completion, through the real sandbox, to every mode of code_io: one verdict
    each, none an error, storable reasons; a correct verdict only for the true answer."""
    from rsi.tasks import problem

    task = get_task("code_io")
    pairs = [(problem(task, 1 + i % 4, "train", i), c) for i, c in enumerate(completions)]
    verdicts = task.verify_many(pairs)
    assert len(verdicts) == len(pairs) and not any(v.error for v in verdicts)
    for (p, c), v in zip(pairs, verdicts, strict=True):
        v.reason.encode("utf-8")
        if v.correct and "#f(?)" not in p.prompt and not p.prompt.startswith("#"):
            assert int(c) == int(p.answer)  # deduction: only the true output


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(JSON, st.binary(max_size=200))
def test_self_plays_check_of_any_output_is_a_value_or_a_reason(value, raw):
    """Self-play's executor reads f(x) from the same line: any JSON, any bytes, never an exception,
    an integer only when the line holds exactly one bounded integer."""
    got = _value(_ex(_line([{"value": value}])), TOKEN)
    assert got == value if type(value) is int and abs(value) < 10**12 else isinstance(got, str)
    text = raw.decode("utf-8", "surrogateescape")
    got = _value(_ex(TOKEN + text), TOKEN)
    assert isinstance(got, str) or [{"value": got}] == json.loads(text)
    if isinstance(got, str):
        got.encode("utf-8")
