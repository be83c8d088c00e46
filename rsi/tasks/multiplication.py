"""An n-digit number times a one-digit number (2..9), written REVERSED (least-significant first).

Difficulty n = digits of the first operand (leading digit nonzero unless n == 1).
a=123, b=7 (product 861):

    prompt "321*7="   answer "168"
"""

from __future__ import annotations

import random
import re

from rsi.records import Problem
from rsi.tasks.base import DIGITS, Task, random_number
from rsi.tasks.registry import TASKS


class Multiplication(Task):
    name = "multiplication"
    description = "multiply an n-digit number by one digit (2-9), digits reversed"
    difficulty_meaning = "digits of the long operand"
    max_difficulty = 40
    alphabet = DIGITS + "*="

    def generate(self, rng: random.Random, difficulty: int) -> tuple[str, str]:
        a, b = random_number(rng, difficulty), rng.randint(2, 9)
        return f"{str(a)[::-1]}*{b}=", str(a * b)[::-1]

    def solve(self, prompt: str) -> tuple[int, str] | None:
        m = re.fullmatch(r"(\d{1,40})\*([2-9])=", prompt)
        if m is None:
            return None
        return len(m.group(1)), str(int(m.group(1)[::-1]) * int(m.group(2)))[::-1]

    def explain(self, problem: Problem) -> str:
        a, b = problem.prompt.rstrip("=").split("*")
        return f"reversed: {a[::-1]} × {b[::-1]} = {problem.answer[::-1]}"

    def max_answer_chars(self, difficulty: int) -> int:
        return difficulty + 1

    def answer_lengths(self, difficulty: int) -> tuple[int, ...]:
        # n == 1 with a == 0 gives "0"; otherwise the product has n or n + 1 digits.
        return (difficulty, difficulty + 1)


TASKS.register(Multiplication.name, Multiplication())
