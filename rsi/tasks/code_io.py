"""Reasoning about code: predict a program's output, find its input, or write it from examples.

Each item draws a program from `rsi.tasks.programs` (difficulty = its size, nesting and value
range) and one of three modes (task `code_io` mixes them; `code_io_deduction`,
`code_io_abduction`, `code_io_induction` fix one):

    deduction   "def f(x):\\n y = x\\n y = y * 3\\n return y\\n#f(4)="    answer "12"
    abduction   "def f(x):\\n y = x\\n y = y * 3\\n return y\\n#f(?)=12"   answer "4" (any x with f(x) = 12)
    induction   "#f(1)=3;f(2)=6;f(4)=12\\ndef f(x):"                    answer the reference body

Deduction answers are compared as integers. Abduction answers are run: the model's input goes
through the program in the sandbox and must give the target. Induction answers are programs:
the completion is appended to `def f(x):` and run in the sandbox on the shown inputs and three
hidden ones; every output must match. Expected values stay on the host (`rsi.sandbox.grading`).
The programs themselves come from rsi's generator, so their ground truth is computed in-process
(`programs.run_trusted`); nothing a model writes runs outside the sandbox.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Sequence

from rsi.records import Problem, Verdict
from rsi.tasks.base import Task
from rsi.tasks.programs import random_input, random_program, run_trusted
from rsi.tasks.registry import TASKS

MODES = ("deduction", "abduction", "induction")
PROPOSABLE = ("deduction", "abduction")  # modes a self-play proposal (a program and an input) can pose
SHOWN, HIDDEN = 3, 3  # induction: examples in the prompt, extra checks kept on the host
_INT = re.compile(r"\s*-?\d{1,40}\s*")


def pose(mode: str, source: str, x: int, y: int) -> tuple[str, str]:
    """(prompt, answer) asking for f's output (deduction) or an input giving y (abduction)."""
    if mode == "deduction":
        return f"{source}\n#f({x})=", str(y)
    if mode == "abduction":
        return f"{source}\n#f(?)={y}", str(x)
    raise ValueError(f"a program and an input pose deduction or abduction, not {mode!r}")


def mode_of(problem: Problem) -> str:
    """Which question a code_io problem asks, read from its prompt."""
    if problem.prompt.startswith("#"):
        return "induction"
    return "abduction" if "\n#f(?)=" in problem.prompt else "deduction"


def program_input(problem: Problem) -> tuple[str, int] | None:
    """(program, input) a deduction or abduction problem is about; None for induction."""
    mode = mode_of(problem)
    if mode == "induction":
        return None
    source, _, rest = problem.prompt.rpartition("\n#f(")
    return source, int(problem.answer if mode == "abduction" else rest.rstrip(")="))


def _body(source: str) -> str:
    return source.split("\n", 1)[1]


def _examples(rng: random.Random, source: str, difficulty: int, n: int) -> list[tuple[int, int]]:
    return [(x, run_trusted(source, x)) for x in (random_input(rng, difficulty) for _ in range(n))]


class CodeIO(Task):
    difficulty_meaning = "program size: statements, nesting depth, value range"
    max_difficulty = 12
    costly_verifier = True  # the sandbox
    alphabet = string.digits + string.ascii_letters + " \n#=()?:;+-*/%<>!,_."

    def __init__(self, name: str, modes: tuple[str, ...] = MODES) -> None:
        self.name = name
        self.modes = modes
        self.description = f"code reasoning ({', '.join(modes)}) on generated integer programs"

    def _draw(self, rng: random.Random, difficulty: int):
        mode = rng.choice(self.modes)
        source = random_program(rng, difficulty)
        return mode, source

    def generate(self, rng: random.Random, difficulty: int) -> tuple[str, str]:
        mode, source = self._draw(rng, difficulty)
        if mode == "induction":
            shown = _examples(rng, source, difficulty, SHOWN)
            pairs = ";".join(f"f({x})={y}" for x, y in shown)
            return f"#{pairs}\ndef f(x):", _body(source)
        x = random_input(rng, difficulty)
        return pose(mode, source, x, run_trusted(source, x))

    def proposable_modes(self) -> tuple[str, ...]:
        """The modes of this task that a proposal (program, input, output) can pose."""
        return tuple(m for m in self.modes if m in PROPOSABLE)

    def max_answer_chars(self, difficulty: int) -> int:
        # room for an induction body of this size (about 22 characters a line)
        return 24 * (difficulty * 5 + 2)

    def answer_lengths(self, difficulty: int) -> tuple[int, ...]:
        return tuple(range(1, self.max_answer_chars(difficulty) + 1))

    def well_formed(self, problem: Problem, completion: str) -> bool:
        text = self.answer(completion)
        if mode_of(problem) == "induction":
            return "return" in text
        return bool(_INT.fullmatch(text))

    def verify(self, problem: Problem, completion: str) -> Verdict:
        return self.verify_many([(problem, completion)])[0]

    def verify_many(self, pairs: Sequence[tuple[Problem, str]]) -> list[Verdict]:
        from rsi.sandbox.grading import HARNESS, function_job, grade_function
        from rsi.sandbox.pool import Job, shared

        verdicts: list[Verdict | None] = [None] * len(pairs)
        jobs, pending = [], []  # sandbox runs and (index, token, expected)
        for i, (problem, completion) in enumerate(pairs):
            if problem.task != self.name:
                raise ValueError(f"problem.task is {problem.task!r}, but this verifier is for {self.name!r}")
            text = self.answer(completion)
            mode = mode_of(problem)
            if mode != "induction" and not _INT.fullmatch(text):
                verdicts[i] = Verdict(0.0, False, f"not an integer: {text[:40]!r}")
            elif mode == "deduction":
                ok = int(text) == int(problem.answer)
                reason = "exact match" if ok else f"expected {problem.answer}, got {text.strip()}"
                verdicts[i] = Verdict(float(ok), ok, reason)
            else:
                source, inputs, expected = self._check(problem, text, mode)
                stdin, token = function_job(source, "f", [[x] for x in inputs])
                jobs.append(Job(HARNESS, stdin))
                pending.append((i, token, expected))
        for (i, token, expected), ex in zip(pending, shared().map(jobs), strict=True):
            graded = grade_function(ex, token, expected)
            verdicts[i] = Verdict(float(graded.correct), graded.correct, graded.reason)
        return verdicts  # type: ignore[return-value]

    def _check(self, problem: Problem, text: str, mode: str) -> tuple[str, list[int], list[int]]:
        """(program to run, inputs, expected outputs) that decide an abduction or induction answer."""
        if mode == "abduction":  # everything is in the prompt, which may be a model's proposal
            source, _, target = problem.prompt.rpartition("\n#f(?)=")
            return source, [int(text)], [int(target)]
        rng = random.Random(f"{self.name}/{problem.difficulty}/{problem.seed}")
        _, source = self._draw(rng, problem.difficulty)
        shown = _examples(rng, source, problem.difficulty, SHOWN)
        hidden = _examples(random.Random(f"hidden/{problem.id}"), source, problem.difficulty, HIDDEN)
        pairs = shown + hidden
        return "def f(x):\n" + text, [x for x, _ in pairs], [y for _, y in pairs]


TASKS.register("code_io", CodeIO("code_io"))
for _mode in MODES:
    TASKS.register(f"code_io_{_mode}", CodeIO(f"code_io_{_mode}", (_mode,)))
