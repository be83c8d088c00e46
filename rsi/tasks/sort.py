"""Sort a string of n random digits ascending (repeats kept).

Difficulty n = length of the string:

    prompt "s:0712="   answer "0127"

`well_formed` checks only digits and length n (not sortedness), like the other tasks: it is a
format filter, not a second verifier.
"""

from __future__ import annotations

import random
import re

from rsi.tasks.base import DIGITS, Task, random_digits
from rsi.tasks.registry import TASKS


class Sort(Task):
    name = "sort"
    description = "sort n random digits ascending"
    difficulty_meaning = "string length"
    max_difficulty = 40
    alphabet = DIGITS + "s:="

    def generate(self, rng: random.Random, difficulty: int) -> tuple[str, str]:
        s = random_digits(rng, difficulty)
        return f"s:{s}=", "".join(sorted(s))

    def solve(self, prompt: str) -> tuple[int, str] | None:
        m = re.fullmatch(r"s:(\d{1,40})=", prompt)
        return None if m is None else (len(m.group(1)), "".join(sorted(m.group(1))))

    def max_answer_chars(self, difficulty: int) -> int:
        return difficulty


TASKS.register(Sort.name, Sort())
