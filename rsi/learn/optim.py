"""The one optimiser and learning-rate schedule of every trainer: SFT (`rsi.learn.sft`), GRPO and
the self-play proposer's update (`rsi.learn.grpo`).

`Optimiser(params, cfg)` is AdamW (fused: one kernel for every parameter's update) with `cfg`'s
betas and weight decay (`rsi.config.OptimiserConfig`: the `train`, `base` and `grpo` sections);
`step(k, loss, total)` sets step k's learning rate, back-propagates `loss`, clips the global
gradient norm to `cfg.grad_clip` and updates. `lr_at` is the schedule: linear warm-up over
`warmup_steps`, then constant or a cosine down to a tenth of `lr` at step `total`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from rsi.config import OptimiserConfig


def lr_at(step: int, cfg: OptimiserConfig, total: int) -> float:
    """Learning rate for 1-based `step` of `total`."""
    warm = min(1.0, step / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if cfg.schedule == "constant":
        return cfg.lr * warm
    progress = min(1.0, step / max(1, total))
    return cfg.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class Optimiser:
    def __init__(self, params: Iterable[torch.nn.Parameter], cfg: OptimiserConfig) -> None:
        self.params = [p for p in params if p.requires_grad]  # with LoRA, only the adapter
        self.cfg = cfg
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas),
                                     fused=True)

    def step(self, step: int, loss: torch.Tensor, total: int,
             sync: Callable[[list[torch.nn.Parameter]], None] | None = None) -> None:
        """One update on `loss` at 1-based `step` of `total` (the schedule's length); `sync(params)`
        after the backward (data-parallel ranks averaging their gradients, `rsi.learn.shard`)."""
        for group in self.opt.param_groups:
            group["lr"] = lr_at(step, self.cfg, total)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if sync is not None:
            sync(self.params)
        torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.opt.step()

    def state_dict(self) -> dict:
        return self.opt.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state)
