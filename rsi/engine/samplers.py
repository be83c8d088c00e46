"""Samplers for a model that is fixed for a stage: the generate and evaluate stages' door.

`open_sampler(checkpoint, engine)` is a context manager giving a `Sampler`, whose
`sample(prompts, max_new_tokens, n, temperature, seed, ...)` returns `n` `Completion`s per prompt,
like `rsi.engine.generate.generate`. Which one runs is `engine.generation`'s decision, made here:

- `torch` (the default): the checkpoint loaded where `engine.device` says, sampled by
  `rsi.engine.generate` (rsi's lean decoder on the CPU, the model's own forward elsewhere).
- `vllm`: vLLM's offline batch engine (`rsi.engine.vllm_sampler`), loaded from the checkpoint
  directory for the stage and shut down after it, so training gets the GPU back.

GRPO's rollouts and self-play's proposals sample the model being trained, so they stay on the
torch engine whatever `engine.generation` says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rsi.config import EngineConfig
from rsi.engine.checkpoint import load_checkpoint
from rsi.engine.generate import Completion, generate


class Sampler(Protocol):
    tokenizer: PreTrainedTokenizerBase

    def sample(self, prompts: list[str], max_new_tokens: int, n: int = 1, temperature: float = 0.0, seed: int = 0,
               batch_size: int = 256, on_batch: Callable[[int], None] | None = None) -> list[list[Completion]]:
        """`n` completions per prompt, result[i][j] the j-th for prompts[i]; `on_batch(k)` after
        each batch with the rows it finished."""
        ...


class TorchSampler:
    """`rsi.engine.generate` on a loaded model."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase):
        self.model, self.tokenizer = model, tokenizer

    def sample(self, prompts: list[str], max_new_tokens: int, n: int = 1, temperature: float = 0.0, seed: int = 0,
               batch_size: int = 256, on_batch: Callable[[int], None] | None = None) -> list[list[Completion]]:
        return generate(self.model, self.tokenizer, prompts, max_new_tokens, n=n, temperature=temperature, seed=seed,
                        batch_size=batch_size, on_batch=on_batch)


@contextmanager
def open_sampler(checkpoint: Path, engine: EngineConfig) -> Iterator[Sampler]:
    """The sampler `engine.generation` names, on `checkpoint` (its hashes verified first), for a `with` block."""
    if engine.generation == "vllm":
        from rsi.engine.vllm_sampler import VllmSampler

        sampler = VllmSampler(checkpoint, engine)
        try:
            yield sampler
        finally:
            sampler.close()
        return
    yield TorchSampler(*load_checkpoint(checkpoint, engine))
