"""Word problems in plain English for pretrained instruction models: a running count through n steps.

Difficulty n = number of steps after the starting amount (each adds, removes or doubles):

    prompt  "Mia has 7 marbles. Mia finds 5 more marbles. Then Mia gives 3 marbles to Leo.
             How many marbles does Mia have now? <instructions>"
    answer  "9"

The prompt asks for the R1 format, reasoning in `<think>…</think>` and only the number in
`<answer>…</answer>`. The verifier reads the last `<answer>` tag (or, with none, the whole
completion) and accepts it when its last integer equals the answer, so accuracy and format are
separate rewards. `well_formed` asks for an `<answer>` tag holding an integer.
`max_answer_chars` is the generation budget in tokens: room to reason before answering.
"""

from __future__ import annotations

import random
import re
import string

from rsi.records import Problem, Verdict
from rsi.tasks.base import R1_INSTRUCTIONS, Task, answer_text, has_answer_tag
from rsi.tasks.registry import TASKS

NAMES = ("Mia", "Leo", "Ava", "Noah", "Zoe", "Omar", "Lena", "Ravi", "Emma", "Kai")
ITEMS = ("apples", "marbles", "stickers", "books", "coins", "shells", "cards", "pencils")
_INT = re.compile(r"-?\d+")


def final_number(completion: str) -> str | None:
    """The last integer inside the last `<answer>` tag (or in the whole text when there is none)."""
    numbers = _INT.findall(answer_text(completion).replace(",", ""))
    return numbers[-1].lstrip("+") if numbers else None


def _noun(plural: str, k: int) -> str:
    return plural[:-1] if k == 1 else plural


class WordArithmetic(Task):
    name = "word_arithmetic"
    description = "count through n add/remove/double steps of a short English story"
    difficulty_meaning = "steps in the story"
    max_difficulty = 8
    alphabet = string.printable

    def generate(self, rng: random.Random, difficulty: int) -> tuple[str, str]:
        who, other, item = *rng.sample(NAMES, 2), rng.choice(ITEMS)
        total = rng.randint(2, 12)
        sentences = [f"{who} has {total} {item}."]
        for step in range(difficulty):
            then = "Then " if step else ""
            kind = rng.choice(("add", "remove", "double") if total <= 30 else ("add", "remove"))
            if kind == "remove" and total > 1:
                k = rng.randint(1, min(9, total - 1))
                total -= k
                sentences.append(f"{then}{who} gives {k} {_noun(item, k)} to {other}.")
            elif kind == "double":
                total *= 2
                sentences.append(f"{then}{who}'s {item} double.")
            else:
                k = rng.randint(1, 9)
                total += k
                sentences.append(f"{then}{who} finds {k} more {_noun(item, k)}.")
        sentences.append(f"How many {item} does {who} have now? {R1_INSTRUCTIONS}")
        return " ".join(sentences), str(total)

    def max_answer_chars(self, difficulty: int) -> int:
        return 48 + 16 * difficulty

    def verify(self, problem: Problem, completion: str) -> Verdict:
        if problem.task != self.name:
            raise ValueError(f"problem.task is {problem.task!r}, but this verifier is for {self.name!r}")
        got = final_number(completion)
        if got == problem.answer:
            return Verdict(reward=1.0, correct=True, reason="final number matches")
        return Verdict(reward=0.0, correct=False, reason=f"expected {problem.answer}, got {got}")

    def well_formed(self, problem: Problem, completion: str) -> bool:
        return has_answer_tag(completion) and _INT.fullmatch(self.answer(completion).strip()) is not None


TASKS.register(WordArithmetic.name, WordArithmetic())
