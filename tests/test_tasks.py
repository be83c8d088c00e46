"""Tests for rsi.tasks: formats, verifiers, reproducibility, split disjointness, errors."""

from __future__ import annotations

import random

import pytest

from rsi.errors import ConfigError
from rsi.records import Problem
from rsi.registry import Registry
from rsi.tasks import (
    SPLIT_OFFSETS,
    SPLIT_SIZE,
    TASKS,
    control_set,
    get_task,
    heldout_set,
    problem,
    problems,
    task_names,
    tasks_table,
)
from rsi.tasks.addition import Addition

ALL = ["addition", "copy", "multiplication", "reverse", "sort"]  # the character tasks of the tiny model


def _rev(x: int) -> str:
    return str(x)[::-1]


def test_all_tasks_registered():
    code = ["code_io", "code_io_abduction", "code_io_deduction", "code_io_induction"]
    assert task_names() == sorted([*ALL, "word_arithmetic", *code])


@pytest.mark.parametrize("n", [1, 2, 3, 7, 40])
def test_addition_is_true_reversed_sum(n):
    task = get_task("addition")
    rng = random.Random(0)
    for _ in range(20):
        prompt, answer = task.generate(rng, n)
        a_rev, b_rev = prompt.removesuffix("=").split("+")
        assert len(a_rev) == len(b_rev) == n
        a, b = int(a_rev[::-1]), int(b_rev[::-1])
        if n > 1:
            assert a_rev[-1] != "0" and b_rev[-1] != "0"  # leading digit nonzero
        assert answer == _rev(a + b)


def test_addition_trains_on_mixed_operand_lengths_and_holds_out_the_hardest():
    """Held-out items at difficulty n add two n-digit numbers; training items (seed data and
    proposals) pair an n-digit operand with one of 1..n digits, in either order (as Lee et al.)."""
    task = get_task("addition")
    lengths = set()
    for p in problems(task, 5, "train", 300):
        a_rev, b_rev = p.prompt.removesuffix("=").split("+")
        assert max(len(a_rev), len(b_rev)) == 5 and p.answer == _rev(int(a_rev[::-1]) + int(b_rev[::-1]))
        assert task.verify(p, p.answer).correct and task.well_formed(p, p.answer)
        lengths.add((len(a_rev), len(b_rev)))
    assert {(5, 1), (1, 5), (5, 5), (3, 5)} <= lengths
    for p in problems(task, 5, "heldout", 50):
        assert [len(x) for x in p.prompt.removesuffix("=").split("+")] == [5, 5]
    assert problems(task, 5, "train", 20) == problems(task, 5, "train", 20)  # reproducible from the id


class _ScriptedRng:
    """Stands in for random.Random: randrange/randint return scripted values in order."""

    def __init__(self, *values: int) -> None:
        self.values = list(values)

    def randrange(self, lo: int, hi: int) -> int:
        v = self.values.pop(0)
        assert lo <= v < hi, (lo, v, hi)
        return v

    def randint(self, lo: int, hi: int) -> int:
        return self.randrange(lo, hi + 1)

    def choice(self, seq: str) -> str:
        v = self.values.pop(0)
        assert v in seq, (v, seq)
        return v


@pytest.mark.parametrize(
    ("n", "a", "b", "prompt", "answer"),
    [(3, 123, 456, "321+654=", "975"), (2, 95, 17, "59+71=", "211"), (1, 0, 0, "0+0=", "0")],
)
def test_addition_known_examples(n, a, b, prompt, answer):
    task = get_task("addition")
    assert task.generate(_ScriptedRng(a, b), n) == (prompt, answer)
    p = Problem("addition", n, "train", 0, prompt, answer)
    assert task.verify(p, answer).correct and task.well_formed(p, answer)


def test_multiplication_known_example():
    task = get_task("multiplication")
    assert task.generate(_ScriptedRng(123, 7), 3) == ("321*7=", "168")
    p = Problem("multiplication", 3, "train", 0, "321*7=", "168")
    assert task.verify(p, "168").reward == 1.0
    assert task.verify(p, "861").reward == 0.0


@pytest.mark.parametrize("n", [1, 3, 12])
def test_multiplication_is_true_reversed_product(n):
    task = get_task("multiplication")
    rng = random.Random(1)
    for _ in range(20):
        prompt, answer = task.generate(rng, n)
        a_rev, b = prompt.removesuffix("=").split("*")
        assert len(a_rev) == n and b in "23456789" and len(b) == 1
        assert answer == _rev(int(a_rev[::-1]) * int(b))


@pytest.mark.parametrize(
    ("name", "prefix", "fn"),
    [("copy", "c:", lambda s: s), ("reverse", "r:", lambda s: s[::-1]), ("sort", "s:", lambda s: "".join(sorted(s)))],
)
def test_string_tasks(name, prefix, fn):
    rng = random.Random(2)
    for n in (1, 5, 30):
        prompt, answer = get_task(name).generate(rng, n)
        assert prompt.startswith(prefix) and prompt.endswith("=")
        s = prompt[len(prefix) : -1]
        assert len(s) == n and s.isdigit()
        assert answer == fn(s)


@pytest.mark.parametrize(
    ("name", "s", "prompt", "answer"),
    [
        ("copy", "0712", "c:0712=", "0712"),
        ("reverse", "0712", "r:0712=", "2170"),
        ("sort", "0712", "s:0712=", "0127"),
        ("sort", "5515", "s:5515=", "1555"),
    ],
)
def test_string_tasks_known_examples(name, s, prompt, answer):
    assert get_task(name).generate(_ScriptedRng(*s), len(s)) == (prompt, answer)


@pytest.mark.parametrize("name", ALL)
def test_verify_accepts_right_rejects_wrong(name):
    task = get_task(name)
    p = problem(task, 5, "train", 3)
    ok = task.verify(p, p.answer)
    assert (ok.reward, ok.correct, ok.reason) == (1.0, True, "exact match")
    wrong = "9" * 6 if p.answer != "9" * 6 else "0" * 6
    bad = task.verify(p, wrong)
    assert (bad.reward, bad.correct) == (0.0, False)
    assert p.answer in bad.reason and wrong in bad.reason
    assert not task.verify(p, "").correct


def test_verify_strips_whitespace_only_at_ends():
    task = get_task("addition")
    p = problem(task, 4, "train", 0)
    assert task.verify(p, f"  {p.answer}\n").correct
    assert not task.verify(p, f"{p.answer[:2]} {p.answer[2:]}").correct


def test_verify_rejects_problem_of_other_task():
    p = problem(get_task("copy"), 3, "train", 0)
    with pytest.raises(ValueError, match="addition"):
        get_task("addition").verify(p, p.answer)


@pytest.mark.parametrize("name", ALL)
def test_reproducible_and_varied(name):
    task = get_task(name)
    assert problem(task, 6, "train", 11) == problem(task, 6, "train", 11)
    batch = problems(task, 6, "heldout", 20)
    assert batch == problems(task, 6, "heldout", 20)
    assert len({p.prompt for p in batch}) >= 18  # different indices give (generally) different problems
    assert problems(task, 6, "train", 5, start=10) == [problem(task, 6, "train", i) for i in range(10, 15)]


def test_problem_metadata():
    p = problem(get_task("reverse"), 4, "heldout", 7)
    expected = ("reverse", 4, "heldout", SPLIT_OFFSETS["heldout"] + 7, "generated")
    assert (p.task, p.difficulty, p.split, p.seed, p.source) == expected
    assert p.id == f"reverse/heldout/4/{SPLIT_OFFSETS['heldout'] + 7}"


def test_train_and_heldout_seeds_disjoint():
    task = get_task("addition")
    last_train = problem(task, 2, "train", SPLIT_SIZE - 1).seed
    first_heldout = problem(task, 2, "heldout", 0).seed
    assert last_train < first_heldout
    train = {p.seed for p in problems(task, 2, "train", 50)}
    heldout = {p.seed for p in problems(task, 2, "heldout", 50)}
    assert not train & heldout


def test_the_control_set_is_drawn_like_the_heldout_set_from_items_never_evaluated():
    task = get_task("addition")
    held, control = heldout_set(task, 6, 50), control_set(task, 6, 50)
    assert len(control) == 50 and not {p.seed for p in held} & {p.seed for p in control}
    assert {p.split for p in control} == {"heldout"} and not {p.prompt for p in held} & {p.prompt for p in control}
    # the held-out form: two 6-digit operands (training items may pair 6 digits with fewer)
    assert all(len(a) == len(b) == 6 for a, b in (p.prompt[:-1].split("+") for p in control))
    assert control == control_set(task, 6, 50)


@pytest.mark.parametrize("bad", [0, 41, -1])
def test_out_of_range_difficulty(bad):
    with pytest.raises(ValueError, match=r"'addition'.*\[1, 40\]"):
        problem(get_task("addition"), bad, "train", 0)


def test_unknown_split_and_bad_index():
    task = get_task("copy")
    with pytest.raises(ValueError, match="'test'"):
        problem(task, 3, "test", 0)
    with pytest.raises(ValueError, match="index"):
        problem(task, 3, "train", SPLIT_SIZE)
    with pytest.raises(ValueError, match="index"):
        problem(task, 3, "train", -1)
    with pytest.raises(ValueError, match="n must be"):
        problems(task, 3, "train", -1)


def test_unknown_task():
    with pytest.raises(ConfigError, match="'division'.*addition.*sort"):
        get_task("division")


@pytest.mark.parametrize("name", ALL)
def test_alphabet_covers_generated_text(name):
    task = get_task(name)
    allowed = set(task.alphabet)
    for i in range(200):
        p = problem(task, 1 + i % task.max_difficulty, "train", i)
        assert set(p.prompt + p.answer) <= allowed, p
        assert len(p.answer) <= task.max_answer_chars(p.difficulty)
        assert task.well_formed(p, p.answer)


def test_well_formed_addition():
    task = get_task("addition")
    p = problem(task, 3, "train", 0)
    assert task.well_formed(p, "123") and task.well_formed(p, "1234\n")
    assert not task.well_formed(p, "12")
    assert not task.well_formed(p, "12345")
    assert not task.well_formed(p, "12a")
    assert not task.well_formed(p, "1 23")
    assert not task.well_formed(p, "")
    # Does not read the answer: a well-formed wrong answer passes.
    wrong = "999" if p.answer != "999" else "998"
    assert task.well_formed(p, wrong) and not task.verify(p, wrong).correct


def test_well_formed_string_tasks_need_exact_length():
    task = get_task("sort")
    p = problem(task, 4, "train", 0)
    assert task.well_formed(p, "9310")  # unsorted but well formed
    assert not task.well_formed(p, "012")
    assert not task.well_formed(p, "01234")
    assert not task.well_formed(p, "０１２３")  # non-ASCII digits


def test_registering_twice_raises():
    with pytest.raises(ValueError, match="already registered"):
        TASKS.register("addition", Addition())
    fresh = Registry("task")
    fresh.register("x", Addition())
    with pytest.raises(ValueError, match="'x'"):
        fresh.register("x", Addition())


def test_example_and_table():
    for name in ALL:
        ex = get_task(name).example()
        assert ex.split == "train" and ex.difficulty == 3
    table = tasks_table()
    assert [c.header for c in table.columns][:2] == ["name", "difficulties"]
    rows = dict(zip(table.columns[0].cells, table.columns[1].cells, strict=True))
    assert list(rows) == task_names()
    assert all(rows[name] == "1–40" for name in ALL) and rows["word_arithmetic"] == "1–8"
    assert "jsonl:" in str(table.caption) and "reasoning_gym:" in str(table.caption)
    add_ex = get_task("addition").example()
    (cell,) = [c for n, c in zip(table.columns[0].cells, table.columns[3].cells, strict=True) if n == "addition"]
    a, b = add_ex.prompt.rstrip("=").split("+")
    # what the task asks, the example, and the reversed digits read the usual way (922+081= is 229 + 180)
    assert cell.startswith(get_task("addition").description) and f"{add_ex.prompt} → {add_ex.answer}" in cell
    assert f"{a[::-1]} + {b[::-1]} = {int(a[::-1]) + int(b[::-1])}" in cell
