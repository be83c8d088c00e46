"""The train stage's optimisation loop: AdamW, linear warm-up, cosine decay to 10 %, gradient clipping.

`train` draws each batch from a callable, so the same loop trains a base from scratch on seed
data and continues a champion on a mix of self-produced and seed examples.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rsi.config import TrainConfig
from rsi.learn.objectives import OBJECTIVES, lm_loss
from rsi.learn.resumable import Resumable
from rsi.records import Example


@dataclass(frozen=True)
class TrainStats:
    steps: int
    sequences: int
    tokens: int  # non-pad tokens seen
    final_loss: float  # mean loss over the last 50 steps


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for 1-based `step`: linear warm-up, then cosine from lr down to 0.1 * lr."""
    warm = min(1.0, step / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    progress = min(1.0, step / max(1, cfg.steps))
    return cfg.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    draw: Callable[[random.Random, int], list[Example]],
    cfg: TrainConfig,
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
    resumable: Resumable | None = None,
) -> TrainStats:
    """Run `cfg.steps` optimiser steps on batches `draw(rng, cfg.batch_size)`. With `resumable`, the
    loop's state is saved every `cfg.checkpoint_every` steps and a rerun goes on from the last save."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    make_batch = OBJECTIVES.get(cfg.objective)
    params = [p for p in model.parameters() if p.requires_grad]  # with LoRA, only the adapter
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    model.train()
    sequences = tokens = 0
    recent: list[float] = []
    first = 1
    if resumable is not None and (saved := resumable.restore(model, opt, rng)):
        first, sequences, tokens, recent = saved["step"] + 1, saved["sequences"], saved["tokens"], saved["recent"]
    for step in range(first, cfg.steps + 1):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        ids, labels = make_batch(tokenizer, draw(rng, cfg.batch_size))  # (B, T), (B, T)
        loss = lm_loss(model(input_ids=ids).logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sequences += ids.shape[0]
        tokens += int((ids != tokenizer.pad_token_id).sum())
        recent = ([*recent, loss.item()])[-50:]
        if resumable is not None:
            resumable.save(step, cfg.steps, model, opt, rng,
                           {"sequences": sequences, "tokens": tokens, "recent": recent})
        if on_step:
            on_step(step, recent[-1])
    model.eval()
    return TrainStats(cfg.steps, sequences, tokens, sum(recent) / len(recent) if recent else float("nan"))
