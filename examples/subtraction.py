"""A task family as a plug-in: subtraction, in one file, without editing rsi.

Difficulty n = digits of the larger operand; the smaller has 1..n digits and the answer is written
in full:

    prompt "s:5203-78="   answer "5125"

Use it by path (`rsi run quick --set task=examples/subtraction.py:Subtraction`), or from an
installed package through an entry point in its pyproject.toml:

    [project.entry-points."rsi.tasks"]
    subtraction = "mypkg.subtraction:Subtraction"

then `--set task=subtraction`. The run records where the task came from (this file and its
sha256), so `rsi status`, `report` and `resume` find it again; a resume refuses if the file changed.
"""

from __future__ import annotations

import random
import re

from rsi.tasks import Task
from rsi.tasks.base import DIGITS, random_number


class Subtraction(Task):
    name = "subtraction"
    description = "subtract a smaller number from an n-digit one"
    difficulty_meaning = "digits of the larger operand"
    max_difficulty = 20
    alphabet = DIGITS + "s:-="

    def generate(self, rng: random.Random, difficulty: int) -> tuple[str, str]:
        a = random_number(rng, difficulty)
        b = min(a, random_number(rng, rng.randint(1, difficulty)))
        return f"s:{a}-{b}=", str(a - b)

    def solve(self, prompt: str) -> tuple[int, str] | None:
        m = re.fullmatch(r"s:(\d{1,20})-(\d{1,20})=", prompt)
        if m is None or int(m.group(2)) > int(m.group(1)):
            return None
        return len(m.group(1)), str(int(m.group(1)) - int(m.group(2)))

    def max_answer_chars(self, difficulty: int) -> int:
        return difficulty

    def answer_lengths(self, difficulty: int) -> tuple[int, ...]:
        return tuple(range(1, difficulty + 1))
