"""Training objectives: pure functions from examples to (input_ids, labels) and a loss.

- `pretrain`: next-token prediction on every token after `<bos>` (prompt and answer).
- `sft`: next-token prediction on the answer tokens and `<eos>` only; the prompt is context.

Batches are right-padded. Under causal attention a real token never attends to a later pad, so
no attention mask is needed and padded positions are simply excluded from the loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from rsi.engine.tokenizer import encode_answer, encode_prompt
from rsi.records import Example
from rsi.registry import Registry

IGNORE = -100

Objective = Callable[[PreTrainedTokenizerBase, list[Example]], tuple[torch.Tensor, torch.Tensor]]
OBJECTIVES: Registry[Objective] = Registry("objective")


def _batch(tokenizer: PreTrainedTokenizerBase, examples: list[Example], answer_only: bool):
    seqs, first_target = [], []
    for ex in examples:
        prompt, answer = encode_prompt(tokenizer, ex.prompt, ex.prefix), encode_answer(tokenizer, ex.answer, ex.prefix)
        seqs.append([*prompt, *answer])
        first_target.append(len(prompt) if answer_only else 1)
    T = max(map(len, seqs))
    ids = torch.full((len(seqs), T), tokenizer.pad_token_id, dtype=torch.long)  # (B, T)
    labels = torch.full((len(seqs), T), IGNORE, dtype=torch.long)  # (B, T), label[t] = token t+1
    for b, (s, k) in enumerate(zip(seqs, first_target, strict=True)):
        ids[b, : len(s)] = torch.tensor(s)
        labels[b, k - 1 : len(s) - 1] = torch.tensor(s[k:])
    return ids, labels


def pretrain_batch(tokenizer, examples):
    return _batch(tokenizer, examples, answer_only=False)


def sft_batch(tokenizer, examples):
    return _batch(tokenizer, examples, answer_only=True)


OBJECTIVES.register("pretrain", pretrain_batch)
OBJECTIVES.register("sft", sft_batch)


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over labelled positions. logits (B, T, V), labels (B, T)."""
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE)
