"""The `Task` interface: a procedural problem generator with its verifier beside it.

Item `index` of a (task, difficulty, split) is generated from
`random.Random(f"{task.name}/{difficulty}/{seed}")` with `seed = SPLIT_OFFSETS[split] + index`,
so any problem is reproducible from its id with no storage, and held-out seeds never overlap
training seeds.

Example:
    >>> from rsi.tasks import get_task
    >>> p = problem(get_task("addition"), difficulty=3, split="train", index=0)
    >>> get_task("addition").verify(p, p.answer + "\\n").correct
    True
"""

from __future__ import annotations

import abc
import random
import re
from collections.abc import Sequence

from rsi.records import Problem, Verdict

SPLIT_OFFSETS = {"train": 0, "heldout": 1_000_000_000}
SPLIT_SIZE = 1_000_000_000  # indices per split; offsets are this far apart, so splits are disjoint
DIGITS = "0123456789"
R1_INSTRUCTIONS = "Respond in the form <think>step-by-step reasoning</think><answer>final answer</answer>"


class Task(abc.ABC):
    """One task family. Subclasses set the class attributes and implement `generate`."""

    name: str
    description: str  # one line
    difficulty_meaning: str  # what the difficulty number means, for `rsi tasks`
    min_difficulty: int = 1
    max_difficulty: int  # hardest difficulty the generator supports
    alphabet: str  # every character a prompt or answer may contain
    pooled: bool = False  # items are rows of a fixed pool (a file): held-out item i wraps around its rows
    costly_verifier: bool = False  # verifying runs code or a checker process: worth sharing among workers (rsi.scale)

    @abc.abstractmethod
    def generate(self, rng: random.Random, difficulty: int) -> tuple[str, str]:
        """Return (prompt, answer) drawn from `rng` at `difficulty`."""

    def make(self, split: str, difficulty: int, seed: int) -> tuple[str, str]:
        """(prompt, answer) of the item with this seed; tasks drawn from a fixed pool override it."""
        return self.generate(random.Random(f"{self.name}/{difficulty}/{seed}"), difficulty)

    @abc.abstractmethod
    def max_answer_chars(self, difficulty: int) -> int:
        """Upper bound on the answer length at `difficulty` (a generation budget)."""

    def answer_lengths(self, difficulty: int) -> tuple[int, ...]:
        """Lengths a well-formed answer may have; the default is exactly `max_answer_chars`."""
        return (self.max_answer_chars(difficulty),)

    def answer(self, completion: str) -> str:
        """The answer a completion gives: the text of its `<answer>` tag when it has one
        (`answer_text`), else all of it. Every verdict on a completion reads it through this."""
        return answer_text(completion)

    def verify(self, problem: Problem, completion: str) -> Verdict:
        """Exact match of the stripped answer (`answer`) with the ground-truth answer."""
        if problem.task != self.name:
            raise ValueError(f"problem.task is {problem.task!r}, but this verifier is for {self.name!r}")
        got = self.answer(completion).strip()
        if got == problem.answer:
            return Verdict(reward=1.0, correct=True, reason="exact match")
        return Verdict(reward=0.0, correct=False, reason=f"expected {problem.answer!r}, got {_short(got)!r}")

    def verify_many(self, pairs: Sequence[tuple[Problem, str]]) -> list[Verdict]:
        """Verdicts for many (problem, completion) pairs. Tasks that run code override this to run
        the checks in parallel in the sandbox; the default calls `verify` on each."""
        return [self.verify(p, c) for p, c in pairs]

    def well_formed(self, problem: Problem, completion: str) -> bool:
        """Format check that never reads `problem.answer`: digits only, an allowed length.

        Used to filter self-labelled answers when no verifier is trusted.
        """
        got = completion.strip()
        return got.isascii() and got.isdigit() and len(got) in self.answer_lengths(problem.difficulty)

    def empty_at(self, split: str, difficulties) -> list[int]:
        """The difficulties among `difficulties` where a pooled task (a file's rows, in `self.rows`
        keyed by (split, difficulty)) has no row of `split`; a generator has items everywhere."""
        return [d for d in difficulties if self.pooled and not self.rows.get((split, d))]

    def solve(self, prompt: str) -> tuple[int, str] | None:
        """(difficulty, answer) of a prompt in this task's format, or None if it is not in that
        format. Tasks that cannot read their prompts back (a file, a gym) return NotImplemented."""
        return NotImplemented

    def check_row(self, prompt: str, answer: str, difficulty: int | None) -> tuple[int, str | None]:
        """Check a problem a person wrote: (its difficulty, None) if it is one of this task's, else
        (difficulty, why not). A task that reads its prompts checks their format, computes the
        difficulty (`difficulty` None: taken from the prompt) and the answer; any other runs its
        verifier on the answer, which needs `difficulty`."""
        solved = self.solve(prompt)
        if solved is NotImplemented:
            if difficulty is None:
                return 0, (f"key 'difficulty' is missing: task {self.name!r} cannot tell a problem's difficulty "
                           f"from its prompt ({self.difficulty_meaning}); give it")
            verdict = self.verify(Problem(self.name, difficulty, "human", 0, prompt, answer, "human"), answer)
            why = None if verdict.correct else f"key 'answer': the task's verifier rejects it ({verdict.reason})"
            return difficulty, why
        if solved is None:
            return difficulty or 0, (f"key 'prompt': {prompt[:60]!r} is not in task {self.name!r}'s format "
                                     f"(for example {self.example().prompt!r})")
        d, expected = solved
        if difficulty is not None and d != difficulty:
            return difficulty, (f"key 'difficulty' is {difficulty}, but the prompt is difficulty {d} "
                                f"({self.difficulty_meaning})")
        if answer != expected:
            return d, f"key 'answer': {answer[:60]!r} is wrong for this prompt (the task computes {expected!r})"
        return d, None

    def explain(self, problem: Problem) -> str:
        """A reader's gloss of one problem for `rsi tasks` (e.g. the reversed numbers read the usual
        way); empty when the prompt speaks for itself."""
        return ""

    def example(self, difficulty: int | None = None) -> Problem:
        """Training item 0, by default at difficulty 3 (clamped to the supported range)."""
        if difficulty is None:
            difficulty = min(max(3, self.min_difficulty), self.max_difficulty)
        return problem(self, difficulty, "train", 0)

    def __repr__(self) -> str:
        return f"<Task {self.name}>"


def problem(task: Task, difficulty: int, split: str, index: int) -> Problem:
    """Build item `index` of `split` at `difficulty`; the same arguments always give the same problem."""
    if split not in SPLIT_OFFSETS:
        raise ValueError(f"split must be one of {sorted(SPLIT_OFFSETS)}, got {split!r}")
    if isinstance(difficulty, bool) or not isinstance(difficulty, int) or not (
        task.min_difficulty <= difficulty <= task.max_difficulty
    ):
        raise ValueError(
            f"difficulty for task {task.name!r} must be an integer in "
            f"[{task.min_difficulty}, {task.max_difficulty}], got {difficulty!r}"
        )
    if isinstance(index, bool) or not isinstance(index, int) or not (0 <= index < SPLIT_SIZE):
        raise ValueError(f"index must be an integer in [0, {SPLIT_SIZE}), got {index!r}")
    seed = SPLIT_OFFSETS[split] + index
    prompt, answer = task.make(split, difficulty, seed)
    return Problem(task=task.name, difficulty=difficulty, split=split, seed=seed, prompt=prompt, answer=answer)


def problems(task: Task, difficulty: int, split: str, n: int, start: int = 0) -> list[Problem]:
    """Items `start .. start + n - 1` of `split` at `difficulty`."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [problem(task, difficulty, split, i) for i in range(start, start + n)]


CONTROL_START = SPLIT_SIZE // 2  # held-out items from here on are never evaluated: the control sets
CONTROL_STRIDE = 10_000_000  # control set k starts at CONTROL_START + k * CONTROL_STRIDE


def control_set(task: Task, difficulty: int, n: int, k: int = 0) -> list[Problem]:
    """`heldout_set`'s twin number `k`, drawn the same way from held-out items no run evaluates (and
    so no model sees): what a problem meets by chance in a held-out set of this size."""
    seen: set[str] = set()
    return [p for p in problems(task, difficulty, "heldout", n, start=CONTROL_START + k * CONTROL_STRIDE)
            if not (p.prompt in seen or seen.add(p.prompt))]


def heldout_set(task: Task, difficulty: int, n: int) -> list[Problem]:
    """The distinct held-out problems (by prompt, first kept) among items 0..n-1 at `difficulty`:
    what a run evaluates on. A small problem space or a small file repeats prompts (sort has 10
    strings of length 1; a file's few held-out rows are reused by index), and a repeat is not
    another problem."""
    seen: set[str] = set()
    return [p for p in problems(task, difficulty, "heldout", n) if not (p.prompt in seen or seen.add(p.prompt))]


_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_CUT_CLOSE = re.compile(r"<(/(a(n(s(w(er?)?)?)?)?)?)?$")  # a closing tag cut off by the budget


def answer_text(completion: str) -> str:
    """The text inside the last `<answer>…</answer>` of a completion; with an `<answer>` that is
    never closed (cut off by the token budget, e.g. after `model.response_prefix: <answer>`),
    everything after the first one, less a cut-off closing tag; else the whole completion.

    Example:
        >>> answer_text("<think>2+2</think><answer>4</answer>"), answer_text("<answer>4</ans")
        ('4', '4')
    """
    found = _ANSWER_TAG.findall(completion)
    if found:
        return found[-1]
    _, tag, rest = completion.partition("<answer>")
    return _CUT_CLOSE.sub("", rest).strip() if tag else completion


def has_answer_tag(completion: str) -> bool:
    return _ANSWER_TAG.search(completion) is not None


def random_digits(rng: random.Random, n: int) -> str:
    """`n` uniformly random digits (leading zeros allowed)."""
    return "".join(rng.choice(DIGITS) for _ in range(n))


def random_number(rng: random.Random, n: int) -> int:
    """A uniformly random number with exactly `n` digits (0..9 when n == 1)."""
    return rng.randrange(0, 10) if n == 1 else rng.randrange(10 ** (n - 1), 10**n)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
