"""Addition of two n-digit numbers, written REVERSED (least-significant digit first).

Difficulty n = digits in each operand (both exactly n digits; leading digit nonzero unless n == 1).
Reversed order lets the model emit the carry in the order it is computed, the usual format for
length generalisation. a=123, b=456 (sum 579):

    prompt "321+654="   answer "975"
"""

from __future__ import annotations

import random

from rsi.records import Problem
from rsi.tasks.base import DIGITS, Task, random_number
from rsi.tasks.registry import TASKS


class Addition(Task):
    name = "addition"
    description = "add two n-digit numbers, digits reversed"
    difficulty_meaning = "digits per operand"
    max_difficulty = 40
    alphabet = DIGITS + "+="

    def generate(self, rng: random.Random, difficulty: int) -> tuple[str, str]:
        a, b = random_number(rng, difficulty), random_number(rng, difficulty)
        return f"{str(a)[::-1]}+{str(b)[::-1]}=", str(a + b)[::-1]

    def explain(self, problem: Problem) -> str:
        a, b = problem.prompt.rstrip("=").split("+")
        return f"reversed: {a[::-1]} + {b[::-1]} = {problem.answer[::-1]}"

    def max_answer_chars(self, difficulty: int) -> int:
        return difficulty + 1

    def answer_lengths(self, difficulty: int) -> tuple[int, ...]:
        return (difficulty, difficulty + 1)


TASKS.register(Addition.name, Addition())
