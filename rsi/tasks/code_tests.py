"""Write a function that passes hidden unit tests: task `code_tests:<path to a JSONL file>`.

Each line is a HumanEval-style object:

    {"task_id": "add", "prompt": "def add(a, b):\\n    \\"\\"\\"Sum of a and b.\\"\\"\\"\\n",
     "entry_point": "add", "canonical_solution": "    return a + b\\n",
     "tests": [{"input": [1, 2], "output": 3}, {"input": [0, 0], "output": 0}], "difficulty": 1}

`tests` hold JSON arguments and expected JSON results; they never enter the sandbox: the
candidate runs under `rsi.sandbox.grading.HARNESS` on the inputs only and the host compares.
A completion passes only when every test passes. The code is the last `<answer>` (else the
whole completion), without a Markdown fence; if it does not define the entry point it is taken
as the body that continues the prompt, as in HumanEval. `canonical_solution` (optional)
continues the prompt and is the answer seed data trains on. A row is held out when the first
byte of the sha256 of its task_id is below 256 * HELDOUT_FRACTION. `difficulty` defaults to 1.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Sequence
from pathlib import Path

from rsi.records import Problem, Verdict
from rsi.tasks.base import Task, answer_text
from rsi.tasks.jsonl import HELDOUT_FRACTION, TaskFileError, json_rows, pick_row

INSTRUCTIONS = ("Complete the Python function. Respond in the form <think>reasoning</think>"
                "<answer>the complete function</answer>")
ANSWER_BUDGET = 384
_FENCE = re.compile(r"```(?:python|py)?\n(.*?)```", re.DOTALL)


class CodeTests(Task):
    description = "write a function that passes hidden unit tests (local HumanEval-style JSONL), run in the sandbox"
    difficulty_meaning = "the rows' 'difficulty' field (default 1)"
    alphabet = string.printable
    costly_verifier = True  # the sandbox
    pooled = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"code_tests:{path}"
        self.rows: dict[tuple[str, int], list[dict]] = {}
        self.by_prompt: dict[str, dict] = {}
        for row in _read(self.path):
            split = "heldout" if hashlib.sha256(row["task_id"].encode()).digest()[0] < 256 * HELDOUT_FRACTION \
                else "train"
            self.rows.setdefault((split, row["difficulty"]), []).append(row)
            self.by_prompt[self._prompt(row)] = row
        difficulties = sorted({d for _, d in self.rows})
        self.min_difficulty, self.max_difficulty = difficulties[0], difficulties[-1]

    @staticmethod
    def _prompt(row: dict) -> str:
        return f"{row['prompt']}\n{INSTRUCTIONS}"

    def generate(self, rng, difficulty):  # items come from rows, see `make`
        raise NotImplementedError("code_tests tasks draw rows by index; use rsi.tasks.problem()")

    def make(self, split: str, difficulty: int, seed: int) -> tuple[str, str]:
        row = pick_row(self.path, self.rows, split, difficulty, seed, "task_id")
        return self._prompt(row), row["canonical_solution"]

    def max_answer_chars(self, difficulty: int) -> int:
        return ANSWER_BUDGET

    def well_formed(self, problem: Problem, completion: str) -> bool:
        return bool(self.answer(completion).strip())

    def answer(self, completion: str) -> str:
        """The code of a completion (`code_of`)."""
        return code_of(completion)

    def verify(self, problem: Problem, completion: str) -> Verdict:
        return self.verify_many([(problem, completion)])[0]

    def verify_many(self, pairs: Sequence[tuple[Problem, str]]) -> list[Verdict]:
        from rsi.sandbox.grading import HARNESS, function_job, grade_function
        from rsi.sandbox.pool import Job, shared

        jobs, checks = [], []
        for problem, completion in pairs:
            row = self.by_prompt[problem.prompt]
            code = self.answer(completion)
            source = code if re.search(rf"def\s+{re.escape(row['entry_point'])}\s*\(", code) else row["prompt"] + code
            stdin, token = function_job(source, row["entry_point"], [t["input"] for t in row["tests"]])
            jobs.append(Job(HARNESS, stdin))
            checks.append((token, [t["output"] for t in row["tests"]]))
        out = []
        for (token, expected), ex in zip(checks, shared().map(jobs), strict=True):
            graded = grade_function(ex, token, expected)
            out.append(Verdict(float(graded.correct), graded.correct, graded.reason))
        return out


def code_of(completion: str) -> str:
    """The code in a completion: the last <answer>, without a Markdown fence."""
    text = answer_text(completion)
    fenced = _FENCE.findall(text)
    return fenced[-1] if fenced else text


def _read(path: Path) -> list[dict]:
    def parse(where: str, row: dict, d: int) -> dict:
        for key in ("task_id", "prompt", "entry_point"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise TaskFileError(f"{where}: key '{key}' must be non-empty text (got {row.get(key)!r}).")
        tests = row.get("tests")
        if not isinstance(tests, list) or not tests or not all(
                isinstance(t, dict) and isinstance(t.get("input"), list) and "output" in t for t in tests):
            raise TaskFileError(f"{where}: key 'tests' must be a non-empty list of "
                                '{"input": [arguments...], "output": expected} objects.')
        solution = row.get("canonical_solution", "")
        if not isinstance(solution, str):
            raise TaskFileError(f"{where}: key 'canonical_solution' must be text (got {solution!r}).")
        return {**row, "difficulty": d, "canonical_solution": solution}

    return json_rows(path, "object holding task_id, prompt, entry_point and tests", parse)
