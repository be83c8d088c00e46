"""Reward functions for GRPO, composed as a weighted sum, each one scored and logged on its own.

Built-in rewards (names usable in `grpo.rewards`):
- `accuracy`: the task's verifier on the completion (which reads its answer, `Task.answer`: the
  text inside `<answer>…</answer>` when there is such a tag). 1.0 when correct, else 0.0.
- `format`: 1.0 when the completion is exactly `<think>…</think>` followed by `<answer>…</answer>`
  (whitespace around and between allowed; the R1 recipe), else 0.0.
- `tags`: partial credit on the way to `format`, 0.25 for each of `<think>`, `</think>`,
  `<answer>`, `</answer>` that appears exactly once. A model that never writes the tags gets no
  signal from `format` alone (every group's reward is equal); this one rewards each step towards it.

Any other name is an installed package's entry point in group `rsi.rewards`, or
`path/to/file.py:function` (`rsi.registry`): a function with TRL's reward signature
`fn(completions, **columns) -> list[float]`, used unchanged. It receives the completions as
strings and the columns `prompts`, `answer`, `difficulty`, `problem_id` and `task` (lists aligned
with `completions`); it should accept `**kwargs`. A `None` in its result scores that sample 0.
If the function raises on a batch, it is called again one sample at a time; a sample on which it
still raises scores 0 and is counted in `RewardScores.errors`, so one bad sample never stops a run.
A result of the wrong length or type is the function's bug and raises `RewardError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rsi.errors import RsiError
from rsi.records import Problem, Verdict
from rsi.registry import PluginError, Registry
from rsi.tasks import get_task
from rsi.tasks.guard import verify_guarded

RewardFn = Callable[..., list[float | None]]

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_FORMAT = re.compile(r"\s*<think>.*?</think>\s*<answer>.*?</answer>\s*", re.DOTALL)


class RewardError(RsiError):
    """A reward function cannot be loaded, or returned something other than one number per sample."""


def verify_answers(completions: list[str], problems: list[Problem]) -> list[Verdict]:
    """The task's verdict on each completion, one batch per task so code
    tasks verify in parallel; a verifier that raises scores that sample 0 (`verify_guarded`,
    the verdict's `error` set)."""
    out: list[Verdict] = [None] * len(problems)  # type: ignore[list-item]
    by_task: dict[str, list[int]] = {}
    for i, p in enumerate(problems):
        by_task.setdefault(p.task, []).append(i)
    for name, idx in by_task.items():
        verdicts = verify_guarded(get_task(name), [(problems[i], completions[i]) for i in idx])
        for i, v in zip(idx, verdicts, strict=True):
            out[i] = v
    return out


def accuracy_reward(completions: list[str], problems: list[Problem], verdicts: list[Verdict] | None = None,
                    **_: object) -> list[float]:
    return [v.reward for v in verdicts or verify_answers(completions, problems)]


def format_reward(completions: list[str], **_: object) -> list[float]:
    return [1.0 if _FORMAT.fullmatch(c) else 0.0 for c in completions]


def tags_reward(completions: list[str], **_: object) -> list[float]:
    return [sum(0.25 for tag in _TAGS if c.count(tag) == 1) for c in completions]


REWARDS: Registry[RewardFn] = Registry("reward")
for _name, _fn in {"accuracy": accuracy_reward, "format": format_reward, "tags": tags_reward}.items():
    REWARDS.register(_name, _fn)


@dataclass(frozen=True)
class Reward:
    """One named component of the total reward."""

    name: str
    weight: float
    fn: RewardFn
    builtin: bool


@dataclass(frozen=True)
class RewardScores:
    """Per-sample scores of every component, their weighted total, per-component error counts and
    the first error's text of each component that raised."""

    components: dict[str, list[float]]
    total: list[float]
    errors: dict[str, int]
    first_errors: dict[str, str] = field(default_factory=dict)


def load_reward(name: str, weight: float) -> Reward:
    """A built-in reward by name, an installed package's entry point in `rsi.rewards`, or
    `path/to/file.py:function` loaded from that file."""
    if REWARDS.builtin(name):
        return Reward(name, weight, REWARDS.get(name), builtin=True)
    try:
        fn = REWARDS.resolve(name)
    except PluginError as e:
        raise RewardError(str(e)) from None
    if not callable(fn):
        raise RewardError(f"reward {name!r} is a {type(fn).__name__}, not a function")
    return Reward(name, weight, fn, builtin=False)


def score(rewards: Sequence[Reward], completions: list[str], problems: list[Problem],
          verdicts: list[Verdict] | None = None) -> RewardScores:
    """Score every completion (completions[i] answers problems[i]) with every reward. `verdicts`,
    when the caller already has them (`verify_answers`), spare `accuracy` verifying again."""
    columns = {
        "prompts": [p.prompt for p in problems], "answer": [p.answer for p in problems],
        "difficulty": [p.difficulty for p in problems], "problem_id": [p.id for p in problems],
        "task": [p.task for p in problems],
    }
    components, errors, first = {}, {}, {}
    if verdicts is None and any(r.builtin and r.name == "accuracy" for r in rewards):
        verdicts = verify_answers(completions, problems)
    for r in rewards:
        if r.builtin:  # accuracy's errors: the samples its verifier raised on (scored 0)
            values = r.fn(completions, problems=problems, verdicts=verdicts)
            failed = [v.reason for v in verdicts or () if v.error] if r.name == "accuracy" else []
            n_err, why = len(failed), failed[0] if failed else ""
        else:
            values, n_err, why = _call_user(r, completions, columns)
        components[r.name], errors[r.name] = values, n_err
        if n_err:
            first[r.name] = why
    total = [sum(r.weight * components[r.name][i] for r in rewards) for i in range(len(completions))]
    return RewardScores(components, total, errors, first)


def _call_user(r: Reward, completions: list[str], columns: dict[str, list]) -> tuple[list[float], int, str]:
    """(values, how many samples raised, the first exception as text): a batch that raises is
    scored sample by sample, and a sample that raises scores 0."""
    try:
        return _checked(r, r.fn(completions, **columns), len(completions)), 0, ""
    except RewardError:
        raise
    except Exception:
        pass
    values, n_err, first = [], 0, ""
    for i, c in enumerate(completions):
        try:
            values += _checked(r, r.fn([c], **{k: [v[i]] for k, v in columns.items()}), 1)
        except RewardError:
            raise
        except Exception as e:
            values.append(0.0)
            n_err += 1
            first = first or f"{type(e).__name__}: {e}"[:300]
    return values, n_err, first


def _checked(r: Reward, out: object, n: int) -> list[float]:
    if not isinstance(out, list | tuple) or len(out) != n:
        got = f"{len(out)} values" if isinstance(out, list | tuple) else f"a {type(out).__name__}"
        raise RewardError(f"reward {r.name!r} returned {got} for {n} completions; it must return a list of {n} floats")
    values = []
    for v in out:
        if v is None:
            values.append(0.0)
        elif isinstance(v, int | float):
            values.append(float(v))
        else:
            raise RewardError(
                f"reward {r.name!r} returned {v!r} ({type(v).__name__}); each value must be a float or None"
            )
    return values
