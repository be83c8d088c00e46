"""The SFT loop of the base and train stages: batches drawn, the answer loss, the one optimiser (`rsi.learn.optim`).

`train` draws each batch from a callable, so the same loop trains a base from scratch on seed
data and continues a champion on a mix of self-produced and seed examples.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rsi.config import TrainConfig
from rsi.engine.forward import answer_loss
from rsi.learn.objectives import OBJECTIVES
from rsi.learn.optim import Optimiser
from rsi.learn.resumable import Resumable
from rsi.learn.shard import ONE_PROCESS, Shard
from rsi.records import Example


@dataclass(frozen=True)
class TrainStats:
    steps: int
    sequences: int
    tokens: int  # non-pad tokens seen
    final_loss: float  # mean loss over the last 50 steps


def train(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    draw: Callable[[random.Random, int], list[Example]],
    cfg: TrainConfig,
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
    resumable: Resumable | None = None,
    shard: Shard = ONE_PROCESS,
) -> TrainStats:
    """Run `cfg.steps` optimiser steps on batches `draw(rng, cfg.batch_size)`. With `resumable`, the
    loop's state is saved every `cfg.checkpoint_every` steps and a rerun goes on from the last save.
    Data-parallel, each rank trains on its `shard` of every batch (`rsi.learn.shard`); the loss and
    counts it reports are the whole batch's."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    make_batch = OBJECTIVES.resolve_called(cfg.objective)
    opt = Optimiser(model.parameters(), cfg)
    model.train()
    sequences = tokens = 0
    recent: list[float] = []
    first = 1
    if resumable is not None and (saved := resumable.restore(model, opt, rng)):
        first, sequences, tokens, recent = saved["step"] + 1, saved["sequences"], saved["tokens"], saved["recent"]
    for step in range(first, cfg.steps + 1):
        contexts, targets = make_batch(tokenizer, shard.take(draw(rng, cfg.batch_size)))
        loss = answer_loss(model, contexts, targets, tokenizer.pad_token_id)
        opt.step(step, loss, cfg.steps, sync=shard.sync)
        sequences += shard.total(len(targets))
        tokens += shard.total(sum(len(c) + len(t) for c, t in zip(contexts, targets, strict=True)))
        recent = ([*recent, shard.mean(loss.item())])[-50:]
        if resumable is not None:
            resumable.save(step, cfg.steps, model, opt, rng,
                           {"sequences": sequences, "tokens": tokens, "recent": recent})
        if on_step:
            on_step(step, recent[-1])
    model.eval()
    return TrainStats(cfg.steps, sequences, tokens, sum(recent) / len(recent) if recent else float("nan"))
