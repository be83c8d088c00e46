"""The engine's door for forwards: which forward runs for a model is decided here, once, and the
calls every trainer makes go through it.

Decisions (each a function of the model as it is now: where it is, wrapped or not, training or not).
rsi's own forwards are CPU float32 code (oneDNN matmuls); a model placed elsewhere (`rsi.engine.device`:
a GPU, or bfloat16) runs its own forward, PyTorch's scaled-dot-product attention, under autocast.
- `sampling(model)`: `"lean"` (`rsi.engine.lean.LeanDecoder`: fused weights, a preallocated KV
  cache, oneDNN matmuls) for a plain model of an architecture `rsi.engine.lean` covers with no
  unmerged LoRA layer; else `"hf"`, the model's own forward. A peft-wrapped model is sampled
  through `sampler(model)`, its adapter merged for the duration, so it samples lean too.
- `training(model)`: `"packed"` (`rsi.engine.packed`: real tokens only, each distinct prompt once)
  for an architecture the lean forward covers, plain or with adapters `rsi.engine.lora` reproduces,
  and no attention dropout while training; else `"hf"`.
- `taped(model)`: whether the sampler records its forward so GRPO's first update back-propagates
  through it (`rsi.engine.tape`): a plain lean-sampled model with something to train.

Calls:
- `logprobs(model, prompts, completions, pad_id)`: each completion token's log-probability given
  its prompt, through the forward `training` picks; `answer_loss` is their mean negative, the
  loss of SFT and pretraining (`rsi.learn.sft`) and the same forward GRPO steps on.
- `sampler(model)`: the plain model to sample from.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
from transformers import PreTrainedModel

from rsi.engine import device, lora, packed
from rsi.engine.lean import architecture_supported, distinct_rows, fused_layers


def _base(model: PreTrainedModel) -> PreTrainedModel:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _unmerged(model: PreTrainedModel) -> bool:
    return any(getattr(m, "merged", True) is False for m in model.modules())


def sampling(model: PreTrainedModel) -> str:
    """"lean" or "hf": the forward `rsi.engine.generate` samples `model` with."""
    if not device.fast_path(model):
        return "hf"
    if hasattr(model, "get_base_model") or _unmerged(model):
        return "hf"  # a peft wrapper (sample from `sampler(model)`), or LoRA layers not merged into `.weight`
    return "lean" if architecture_supported(model) else "hf"


def training(model: PreTrainedModel) -> str:
    """"packed" or "hf": the forward `logprobs` (and so every trainer) runs `model` with."""
    base = _base(model)
    if not device.fast_path(model) or not architecture_supported(base):
        return "hf"
    if model.training and getattr(base.config, "attention_dropout", 0.0):
        return "hf"
    if hasattr(model, "get_base_model"):
        return "packed" if lora.trainable(model) else "hf"
    return "hf" if _unmerged(model) else "packed"


def taped(model: PreTrainedModel) -> bool:
    """Whether sampling `model` can record a tape for its first GRPO update (see the module docstring)."""
    return (sampling(model) == "lean" and not getattr(model.config, "attention_dropout", 0.0)
            and any(p.requires_grad for p in model.parameters()))


@contextmanager
def sampler(model: PreTrainedModel):
    """The plain model to sample from: a LoRA-wrapped model has its adapter merged in for the duration
    (so the lean sampler can run it) and unmerged after; any other model is yielded as it is."""
    if not hasattr(model, "merge_adapter"):
        yield model
        return
    model.merge_adapter()
    try:
        yield model.get_base_model()
    finally:
        model.unmerge_adapter()


def left_pad(prompts: Sequence[Sequence[int]], T: int, pad: int,
             on: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), both (len(prompts), T), prompts aligned to the right; built on the
    host and moved `on` a device in one copy."""
    ids = torch.full((len(prompts), T), pad, dtype=torch.long)
    attn = torch.zeros((len(prompts), T), dtype=torch.long)
    for b, p in enumerate(prompts):
        ids[b, T - len(p):] = torch.tensor(p, dtype=torch.long)
        attn[b, T - len(p):] = 1
    return (ids, attn) if on is None or on.type == "cpu" else (ids.to(on), attn.to(on))


def logprobs(
    model: PreTrainedModel, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities (B, C) of each completion's tokens given its prompt, and their mask (B, C).

    The packed forward computes no padding and each distinct prompt once. The model's own forward
    gets prompts left-padded and completions right-padded, so every completion starts at the same
    position and only the last C + 1 positions' logits are computed; when prompts differ in length
    an attention mask and position ids keep padding invisible.
    """
    if training(model) == "packed":
        base = _base(model)
        firsts, index = distinct_rows(prompts)
        ids, attn = left_pad([prompts[b] for b in firsts], max(map(len, prompts)), pad_id)
        return packed.packed_logprobs(base, fused_layers(base), ids, attn, index, completions)
    B, Lp, C = len(prompts), max(map(len, prompts)), max(1, max(map(len, completions)))
    ids = torch.full((B, Lp + C), pad_id, dtype=torch.long)
    attn = torch.zeros((B, Lp + C), dtype=torch.long)
    mask = torch.zeros((B, C))
    for b, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        ids[b, Lp - len(p): Lp] = torch.tensor(p, dtype=torch.long)
        ids[b, Lp: Lp + len(c)] = torch.tensor(c, dtype=torch.long)
        attn[b, Lp - len(p): Lp + len(c)] = 1
        mask[b, : len(c)] = 1
    at = device.of(model)
    ids, attn, mask = ids.to(at), attn.to(at), mask.to(at)
    kwargs = {}
    if len({len(p) for p in prompts}) > 1:  # left padding: mask it and count positions from 0
        kwargs = {"attention_mask": attn, "position_ids": (attn.cumsum(-1) - 1).clamp(min=0)}
    with device.autocast(model):
        logits = model(input_ids=ids, logits_to_keep=C + 1, **kwargs).logits[:, :-1].float()  # (B, C, V)
    target = ids[:, Lp:]  # (B, C)
    logp = logits.gather(-1, target[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return logp * mask, mask


def answer_loss(
    model: PreTrainedModel, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], pad_id: int
) -> torch.Tensor:
    """Mean negative log-likelihood of the completions' tokens given their prompts (every token
    weighs the same): the loss of SFT and of pretraining."""
    logp, mask = logprobs(model, prompts, completions, pad_id)
    return -logp.sum() / mask.sum()
