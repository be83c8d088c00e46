"""LoRA adapters of a peft-wrapped model, read out for rsi's packed training forward (`rsi.engine.packed`).

peft's vanilla LoRA layer computes `base(x) + lora_B(lora_A(dropout(x))) * scaling` for each
active adapter. `rsi.engine.packed` runs the frozen base weights stacked (q, k, v together; gate and up
together), so the adapters are stacked to match: A's rows concatenated, B block-diagonal, each B
times its scaling, giving the same sum in two small matmuls per stacked projection. Gradients
reach the adapters' own parameters through the stacking.

`trainable(model)` says whether every adapter is one this reproduces exactly: not merged, no
dropout, no DoRA or other variant, no LoRA bias, no adapter on the embeddings or the LM head.
"""

from __future__ import annotations

import torch
from torch import nn

Lora = tuple[torch.Tensor, torch.Tensor]  # (A (r, in), B (out, r) times the scaling): adds x A^T B^T


def trainable(model: nn.Module) -> bool:
    """Whether `rsi.engine.packed` computes this peft model's forward (see the module docstring)."""
    base = model.get_base_model()
    for name in ("embed_tokens", "lm_head"):
        if any(hasattr(m, "lora_A") for m in _named(base, name)):
            return False
    return all(_vanilla(m) for m in base.modules() if hasattr(m, "lora_A"))


def stacked_lora(modules: list[nn.Module]) -> Lora | None:
    """(A, B) of the projections `modules` stacked in order; None when none has an adapter."""
    parts = [_adapter(m) for m in modules]
    if all(p is None for p in parts):
        return None
    As, Bs = [], []
    for m, p in zip(modules, parts, strict=True):
        if p is None:  # no adapter on this one: a zero-rank block
            w = m.weight
            p = (w.new_zeros((0, w.shape[1])), w.new_zeros((w.shape[0], 0)))
        As.append(p[0])
        Bs.append(p[1])
    return torch.cat(As), torch.block_diag(*Bs)


def _adapter(m: nn.Module) -> Lora | None:
    if not hasattr(m, "lora_A") or m.disable_adapters:
        return None
    As, Bs = [], []
    for name in m.active_adapters:
        if name in m.lora_A:
            As.append(m.lora_A[name].weight)
            Bs.append(m.lora_B[name].weight * m.scaling[name])
    if not As:
        return None
    return torch.cat(As), torch.cat(Bs, dim=1)  # several adapters add up: concatenated ranks


def _vanilla(m: nn.Module) -> bool:
    if getattr(m, "merged", False) or getattr(m, "fan_in_fan_out", False):
        return False
    for name in m.active_adapters:
        if name not in m.lora_A:
            continue
        if name in getattr(m, "lora_variant", {}) or getattr(m, "use_dora", {}).get(name, False):
            return False
        if not isinstance(m.lora_dropout[name], nn.Identity) or m.lora_B[name].bias is not None:
            return False
    return True


def _named(model: nn.Module, leaf: str):
    return [m for n, m in model.named_modules() if n.split(".")[-1] == leaf]
