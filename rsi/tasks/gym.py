"""Any `reasoning_gym` dataset as a task, `reasoning_gym:<dataset>`, with its own generator and scorer.

Difficulty d sets every attribute of the dataset's curriculum to level d - 1 (capped at that
attribute's last level), so difficulty 1 is the curriculum's easiest configuration and the
largest difficulty is its hardest; datasets without a curriculum have one difficulty. Item
(split, d, seed) is entry 0 of the dataset built with that configuration and a seed derived
from the item's seed, so it is reproducible and train/held-out items come from disjoint seeds.
The prompt is the entry's question followed by the R1 instructions; the verifier passes the
last `<answer>` tag (else the whole completion) to the dataset's `score_answer` and counts a
score of 1 as correct.

Example:
    >>> task = GymTask("basic_arithmetic")
    >>> task.min_difficulty, task.max_difficulty
    (1, 5)
"""

from __future__ import annotations

import random
import string
from functools import lru_cache

from rsi.errors import ConfigError
from rsi.records import Problem, Verdict
from rsi.tasks.base import R1_INSTRUCTIONS, Task, has_answer_tag

ANSWER_BUDGET = 256


class GymTask(Task):
    description = "a reasoning_gym dataset, difficulty mapped onto its curriculum levels"
    difficulty_meaning = "curriculum level + 1"
    alphabet = string.printable

    def __init__(self, dataset: str) -> None:
        try:
            from reasoning_gym.factory import CURRICULA, DATASETS, create_curriculum
        except ImportError:
            raise ConfigError("task 'reasoning_gym:…' needs the reasoning-gym package: "
                              "pip install 'rsi[hf]'.") from None
        if dataset not in DATASETS:
            raise ConfigError(f"task 'reasoning_gym:{dataset}': no such reasoning_gym dataset. "
                              f"Known datasets: {', '.join(sorted(DATASETS))}.")
        self.dataset = dataset
        self.name = f"reasoning_gym:{dataset}"
        self._cls, self._config_cls = DATASETS[dataset]
        self._curriculum = create_curriculum(dataset) if dataset in CURRICULA else None
        levels = [len(a.levels) for a in self._curriculum._attributes.values()] if self._curriculum else [1]
        self.max_difficulty = max(levels)

    def generate(self, rng: random.Random, difficulty: int) -> tuple[str, str]:
        entry = self._dataset(difficulty, rng.randrange(2**31))[0]
        return f"{entry['question']}\n\n{R1_INSTRUCTIONS}", str(entry["answer"])

    @lru_cache(maxsize=4096)  # noqa: B019  (tasks live as long as the process)
    def _dataset(self, difficulty: int, seed: int):
        if self._curriculum is None:
            return self._cls(config=self._config_cls(seed=seed, size=1))
        for name, attr in self._curriculum._attributes.items():
            self._curriculum.set_attr_level(name, min(difficulty - 1, len(attr.levels) - 1))
        return self._cls(config=self._curriculum.generate_configuration({"seed": seed, "size": 1}))

    def max_answer_chars(self, difficulty: int) -> int:
        return ANSWER_BUDGET

    def verify(self, problem: Problem, completion: str) -> Verdict:
        if problem.task != self.name:
            raise ValueError(f"problem.task is {problem.task!r}, but this verifier is for {self.name!r}")
        inner = random.Random(f"{self.name}/{problem.difficulty}/{problem.seed}").randrange(2**31)
        dataset = self._dataset(problem.difficulty, inner)
        try:
            score = float(dataset.score_answer(self.answer(completion).strip(), dataset[0]))
        except Exception as e:  # a scorer raising on one odd answer scores it 0
            return Verdict(reward=0.0, correct=False, reason=f"scorer raised {type(e).__name__}: {e}")
        return Verdict(reward=score, correct=score >= 1.0, reason=f"reasoning_gym score {score:g}")

    def well_formed(self, problem: Problem, completion: str) -> bool:
        return has_answer_tag(completion) and bool(self.answer(completion).strip())
