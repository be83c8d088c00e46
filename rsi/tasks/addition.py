"""Addition of two numbers of up to n digits, written REVERSED (least-significant digit first).

Difficulty n = digits of the longer operand (leading digit nonzero unless n == 1). Held-out items
pair two n-digit operands, the hardest problems at n; training items (seed data and proposals)
pair an n-digit operand with one of 1..n digits, in either order, as Lee et al. (2025) train.
Mixed lengths make the model find each operand's digits from the `+` and the `=` rather than from
fixed offsets: on lengths 1-5 it learned the labelled range in about 2,500 steps and added 6-digit
numbers 16-54 % of the time, where models trained on lengths 1-4 (equal or mixed) scored 0 % at 5.
Reversed order lets the model emit the carry in the order it is computed, the usual format for
length generalisation.
a=123, b=456 (sum 579):

    prompt "321+654="   answer "975"
"""

from __future__ import annotations

import random
import re

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
        """Two `difficulty`-digit operands (the held-out form)."""
        return self._pose(random_number(rng, difficulty), random_number(rng, difficulty))

    def make(self, split: str, difficulty: int, seed: int) -> tuple[str, str]:
        rng = random.Random(f"{self.name}/{difficulty}/{seed}")
        if split == "heldout":
            return self.generate(rng, difficulty)
        a, b = random_number(rng, difficulty), random_number(rng, rng.randint(1, difficulty))
        return self._pose(*((a, b) if rng.random() < 0.5 else (b, a)))

    @staticmethod
    def _pose(a: int, b: int) -> tuple[str, str]:
        return f"{str(a)[::-1]}+{str(b)[::-1]}=", str(a + b)[::-1]

    def solve(self, prompt: str) -> tuple[int, str] | None:
        m = re.fullmatch(r"(\d{1,40})\+(\d{1,40})=", prompt)
        if m is None:
            return None
        a, b = m.group(1), m.group(2)
        return max(len(a), len(b)), str(int(a[::-1]) + int(b[::-1]))[::-1]

    def explain(self, problem: Problem) -> str:
        a, b = problem.prompt.rstrip("=").split("+")
        return f"reversed: {a[::-1]} + {b[::-1]} = {problem.answer[::-1]}"

    def max_answer_chars(self, difficulty: int) -> int:
        return difficulty + 1

    def answer_lengths(self, difficulty: int) -> tuple[int, ...]:
        return (difficulty, difficulty + 1)


TASKS.register(Addition.name, Addition())
