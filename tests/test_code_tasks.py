"""Code tasks: generated programs, the three code_io modes and code_tests, graded in the sandbox."""

from __future__ import annotations

import json
import random

import pytest

from rsi.tasks import get_task, problem, problems
from rsi.tasks.jsonl import TaskFileError
from rsi.tasks.programs import knobs, random_input, random_program, run_trusted


def test_program_knobs_grow_with_difficulty():
    easy, hard = random_program(random.Random(1), 1), random_program(random.Random(1), 9)
    assert easy.count("\n") < hard.count("\n") and knobs(9)[1] == 2 and knobs(1)[1] == 0
    assert "for " in "".join(random_program(random.Random(s), 9) for s in range(20))
    for seed in range(200):  # generated programs terminate quickly on generated inputs
        rng = random.Random(seed)
        src = random_program(rng, 12)
        assert isinstance(run_trusted(src, random_input(rng, 12)), int)
        assert "y * y" not in src


@pytest.mark.parametrize("mode", ["deduction", "abduction", "induction"])
def test_reference_answers_pass_and_wrong_ones_fail(sandbox, mode):
    task = get_task(f"code_io_{mode}")
    items = problems(task, 4, "train", 6)
    good = task.verify_many([(p, p.answer) for p in items])
    assert all(v.correct and v.reward == 1.0 for v in good), good
    bad_answer = {"deduction": lambda p: str(int(p.answer) + 1), "abduction": lambda p: "not a number",
                  "induction": lambda p: " return 123456789"}[mode]
    bad = task.verify_many([(p, bad_answer(p)) for p in items])
    assert not any(v.correct for v in bad), bad


def test_abduction_accepts_any_input_with_the_target_output(sandbox):
    task = get_task("code_io_abduction")
    p = next(p for p in problems(task, 1, "train", 50) if "y = y % " in p.prompt)
    source = p.prompt.split("\n#")[0]
    target = int(p.prompt.rsplit("=", 1)[1])
    others = [x for x in range(-50, 50) if run_trusted(source, x) == target and str(x) != p.answer]
    assert others, p.prompt
    assert task.verify(p, str(others[0])).correct


def test_induction_checks_hidden_inputs(sandbox):
    task = get_task("code_io_induction")
    p = problem(task, 3, "train", 2)
    shown = dict(tuple(map(int, pair[2:].split(")="))) for pair in p.prompt[1:].split("\n")[0].split(";"))
    lookup = " table = " + repr(shown) + "\n return table[x]"  # fits the shown examples only
    v = task.verify(p, lookup)
    assert not v.correct and ("pass" in v.reason)


def test_code_io_mixes_modes_and_prompts_fit_the_alphabet():
    task = get_task("code_io")
    items = problems(task, 5, "train", 30)
    kinds = {("#f(?)" in p.prompt, p.prompt.startswith("#")) for p in items}
    assert len(kinds) == 3
    assert all(set(p.prompt + p.answer) <= set(task.alphabet) for p in items)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _row(i):
    return {"task_id": f"add{i}", "prompt": f"def add{i}(a, b):\n    \"\"\"a + b + {i}\"\"\"\n",
            "entry_point": f"add{i}", "canonical_solution": f"    return a + b + {i}\n",
            "tests": [{"input": [1, 2], "output": 3 + i}, {"input": [5, -5], "output": i}]}


def test_code_tests_grades_completions_in_the_sandbox(sandbox, tmp_path):
    f = tmp_path / "p.jsonl"
    _write(f, [_row(i) for i in range(1, 13)])
    task = get_task(f"code_tests:{f}")
    p = problem(task, 1, "train", 0)
    i = int(p.prompt.split("(")[0][len("def add"):])
    verdicts = task.verify_many([
        (p, p.answer),  # HumanEval-style body continuing the prompt
        (p, f"<think>easy</think><answer>```python\ndef add{i}(a, b):\n    return a + b + {i}\n```</answer>"),
        (p, "    return a + b\n"),  # wrong
        (p, "import sys\nsys.exit(0)\n"),  # an early exit scores 0
    ])
    assert [v.correct for v in verdicts] == [True, True, False, False], verdicts
    assert "1/2 pass" in verdicts[2].reason or "0/2 pass" in verdicts[2].reason


def test_code_tests_file_errors_name_line_and_key(tmp_path):
    f = tmp_path / "bad.jsonl"
    _write(f, [_row(0), {**_row(1), "tests": [{"input": 3}]}])
    with pytest.raises(TaskFileError, match=r"bad.jsonl:2: key 'tests'"):
        get_task(f"code_tests:{f}")
