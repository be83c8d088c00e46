"""Reverse a string of n random digits (leading zeros allowed).

Difficulty n = length of the string:

    prompt "r:0712="   answer "2170"
"""

from __future__ import annotations

import random
import re

from rsi.tasks.base import DIGITS, Task, random_digits
from rsi.tasks.registry import TASKS


class Reverse(Task):
    name = "reverse"
    description = "reverse n random digits"
    difficulty_meaning = "string length"
    max_difficulty = 40
    alphabet = DIGITS + "r:="

    def generate(self, rng: random.Random, difficulty: int) -> tuple[str, str]:
        s = random_digits(rng, difficulty)
        return f"r:{s}=", s[::-1]

    def solve(self, prompt: str) -> tuple[int, str] | None:
        m = re.fullmatch(r"r:(\d{1,40})=", prompt)
        return None if m is None else (len(m.group(1)), m.group(1)[::-1])

    def max_answer_chars(self, difficulty: int) -> int:
        return difficulty


TASKS.register(Reverse.name, Reverse())
