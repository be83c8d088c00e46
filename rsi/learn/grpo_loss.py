"""GRPO-family policy-gradient losses: pure tensor functions, no model and no state.

Notation: a batch holds B = P * G rows, the G sampled answers of each of P problems, grouped
consecutively (rows g*G .. g*G+G-1 answer problem g). Per row i and completion token t:
`logp[i, t]` is the current policy's log-probability of the sampled token (carries gradient),
`old_logp` that of the policy that sampled it (no gradient), `ref_logp` that of the frozen
reference (the cycle's starting champion), `mask[i, t]` is 1 on real completion tokens and 0 on
padding. `rewards[i]` is the row's scalar reward.

Advantages (`group_advantages`), with mean and std taken within each group of G:
- `grpo`, `dapo`: A_i = (r_i - mean) / (std + 1e-4), std the unbiased sample std (as TRL).
- `dr_grpo`:      A_i = r_i - mean (no std normalisation).

Per token: ratio rho = exp(logp - old_logp); surrogate s = min(rho * A, clip(rho, 1 - eps_low,
1 + eps_high) * A); KL estimate (k3, always >= 0) k = exp(ref - logp) - (ref - logp) - 1;
objective o = s - beta * k. The loss is minus the aggregated objective:
- `grpo`:    mean over rows of (sum_t o * mask / sum_t mask): each answer's token mean, then the
             batch mean, i.e. J = E[1/G sum_i 1/|o_i| sum_t (...)] of the GRPO paper.
- `dr_grpo`: sum over rows and tokens of o * mask / (B * max_tokens): a constant normaliser (the
             generation budget), so long answers are not down-weighted per token (Dr. GRPO).
- `dapo`:    sum of o * mask / sum of mask over the whole batch (token-level mean), with the
             decoupled `eps_high` (clip-higher); groups whose rewards are all equal carry no
             signal and are dropped (`keep_groups`) before the loss.
For `grpo` and `dr_grpo`, eps_high = eps_low = eps.

Example:
    >>> import torch
    >>> group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), 4, "dr_grpo")
    tensor([ 0.7500, -0.2500, -0.2500, -0.2500])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Variant = Literal["grpo", "dr_grpo", "dapo"]
VARIANTS: tuple[str, ...] = ("grpo", "dr_grpo", "dapo")
STD_EPS = 1e-4


@dataclass(frozen=True)
class LossStats:
    """Per-step diagnostics of `grpo_loss` (plain floats, for the ledger)."""

    kl: float  # masked token mean of the k3 KL estimate (0 when there is no reference)
    clip_fraction: float  # share of tokens whose clipped term was the active one
    ratio_mean: float  # masked token mean of rho


def group_advantages(rewards: torch.Tensor, group_size: int, variant: Variant) -> torch.Tensor:
    """(B,) rewards -> (B,) advantages, normalised within consecutive groups of `group_size`."""
    _check_variant(variant)
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(
            f"rewards must be 1-D with a multiple of group_size={group_size} rows, got {tuple(rewards.shape)}"
        )
    r = rewards.float().view(-1, group_size)  # (P, G)
    centred = r - r.mean(dim=1, keepdim=True)
    if variant == "dr_grpo":
        return centred.flatten()
    std = r.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(r[:, :1])
    return (centred / (std + STD_EPS)).flatten()


def keep_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(B,) bool: rows of groups whose rewards are not all equal (DAPO's dynamic-sampling filter)."""
    r = rewards.view(-1, group_size)
    varied = (r != r[:, :1]).any(dim=1)  # (P,)
    return varied.repeat_interleave(group_size)


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    variant: Variant = "grpo",
    eps: float = 0.2,
    eps_high: float | None = None,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
    max_tokens: int | None = None,
) -> tuple[torch.Tensor, LossStats]:
    """The loss (a scalar to minimise) and its diagnostics; see the module docstring.

    Shapes: logp, old_logp, ref_logp, mask (B, T); advantages (B,). `eps_high` applies to `dapo`
    only (default: eps). `max_tokens` is `dr_grpo`'s constant normaliser (default: T).
    """
    _check_variant(variant)
    if beta and ref_logp is None:
        raise ValueError("beta > 0 needs ref_logp (the reference policy's log-probabilities)")
    mask = mask.to(logp.dtype)
    hi = (eps if eps_high is None else eps_high) if variant == "dapo" else eps
    adv = advantages.to(logp)[:, None]  # (B, 1), on the device and in the precision of the log-probabilities
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - eps, 1 + hi) * adv
    objective = torch.minimum(unclipped, clipped)
    kl = torch.zeros_like(logp)
    if ref_logp is not None:
        delta = ref_logp - logp
        kl = torch.exp(delta) - delta - 1
    if beta:
        objective = objective - beta * kl
    B, T = logp.shape
    if variant == "grpo":
        per_row = (objective * mask).sum(1) / mask.sum(1).clamp(min=1)
        total = per_row.mean()
    elif variant == "dr_grpo":
        total = (objective * mask).sum() / (B * (max_tokens or T))
    else:
        total = (objective * mask).sum() / mask.sum().clamp(min=1)
    with torch.no_grad():
        n = mask.sum().clamp(min=1)
        active = (clipped < unclipped).to(mask.dtype)  # min() chose the clipped term
        stats = LossStats(
            kl=float((kl * mask).sum() / n),
            clip_fraction=float((active * mask).sum() / n),
            ratio_mean=float((ratio * mask).sum() / n),
        )
    return -total, stats


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown GRPO variant {variant!r}; choose one of {', '.join(VARIANTS)}")
