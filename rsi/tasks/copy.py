"""Copy a string of n random digits (leading zeros allowed).

Difficulty n = length of the string. The "c:" prefix names the task, so one model can learn
several string tasks side by side:

    prompt "c:0712="   answer "0712"
"""

from __future__ import annotations

import random
import re

from rsi.tasks.base import DIGITS, Task, random_digits
from rsi.tasks.registry import TASKS


class Copy(Task):
    name = "copy"
    description = "copy n random digits"
    difficulty_meaning = "string length"
    max_difficulty = 40
    alphabet = DIGITS + "c:="

    def generate(self, rng: random.Random, difficulty: int) -> tuple[str, str]:
        s = random_digits(rng, difficulty)
        return f"c:{s}=", s

    def solve(self, prompt: str) -> tuple[int, str] | None:
        m = re.fullmatch(r"c:(\d{1,40})=", prompt)
        return None if m is None else (len(m.group(1)), m.group(1))

    def max_answer_chars(self, difficulty: int) -> int:
        return difficulty


TASKS.register(Copy.name, Copy())
