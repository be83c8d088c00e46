"""The stages' pool: one interface for work in this process and on Ray.

A `SampleJob` is one `Sampler.sample` call (a difficulty's prompts with their seed); jobs are
independent, so any worker may take any job and the answers are the same. `Session.run(jobs)`
returns their answers in the order of `jobs`; `Pool.verify(task_ref, pairs)` the verdicts of
(problem, answer) pairs in their order; `Pool.train` is SFT. `LocalPool` does all three here;
`rsi.scale.ray_pool.RayPool` shares them among Ray actors, and trains data-parallel on Ray Train
(`scale.strategy`: `rsi.scale.ray_train`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias

from rsi.config import EngineConfig, TrainConfig
from rsi.records import Problem, Verdict
from rsi.tasks.guard import verify_guarded

if TYPE_CHECKING:  # the engine (torch, transformers) is imported by the stages that sample or train, not by readers
    from rsi.engine.generate import Completion
    from rsi.learn.resumable import Resumable
    from rsi.learn.sft import TrainStats


@dataclass(frozen=True)
class SampleJob:
    prompts: list[str]
    max_new_tokens: int
    n: int = 1
    temperature: float = 0.0
    seed: int = 0
    batch_size: int = 256


Answers: TypeAlias = "list[list[Completion]]"  # per prompt, its n completions


class Session(Protocol):
    def run(self, jobs: Sequence[SampleJob], on_rows: Callable[[int], None] | None = None) -> list[Answers]:
        """Each job's answers, in the order of `jobs`; `on_rows(k)` as k more answers are done."""
        ...


class Pool(Protocol):
    workers: int

    def session(self, checkpoint: Path, engine: EngineConfig):
        """A context manager: a `Session` sampling from `checkpoint`, loaded once per worker."""
        ...

    def verify(self, task, pairs: Sequence[tuple[Problem, str]]) -> list[Verdict]:
        """The task's (guarded) verdicts on `pairs`, in their order."""
        ...

    def train(self, model, tokenizer, draw, cfg: TrainConfig, seed: int, scratch: Path,
              on_step: Callable[[int, float], None] | None = None, resumable: Resumable | None = None) -> TrainStats:
        """SFT of `model` in place (`rsi.learn.sft.train`); `scratch` is a directory every worker sees."""
        ...

    def close(self) -> None: ...


class LocalSession:
    """A `Session` over one sampler in this process (also `rsi eval`'s, over a model loaded any way)."""

    def __init__(self, sampler):
        self.sampler = sampler

    def run(self, jobs: Sequence[SampleJob], on_rows: Callable[[int], None] | None = None) -> list[Answers]:
        return [self.sampler.sample(j.prompts, j.max_new_tokens, n=j.n, temperature=j.temperature, seed=j.seed,
                                    batch_size=j.batch_size, on_batch=on_rows) for j in jobs]


class LocalPool:
    """Everything in this process, one job at a time."""

    workers = 1

    @contextmanager
    def session(self, checkpoint: Path, engine: EngineConfig) -> Iterator[Session]:
        from rsi.engine.samplers import open_sampler

        with open_sampler(checkpoint, engine) as sampler:
            yield LocalSession(sampler)

    def verify(self, task, pairs: Sequence[tuple[Problem, str]]) -> list[Verdict]:
        return verify_guarded(task, pairs)

    def train(self, model, tokenizer, draw, cfg: TrainConfig, seed: int, scratch: Path,
              on_step: Callable[[int, float], None] | None = None, resumable: Resumable | None = None) -> TrainStats:
        from rsi.learn.sft import train

        return train(model, tokenizer, draw, cfg, seed, on_step=on_step, resumable=resumable)

    def close(self) -> None:
        pass
