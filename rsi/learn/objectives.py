"""Training objectives: pure functions from examples to (contexts, targets) token lists.

- `pretrain`: next-token prediction on every token after `<bos>` (prompt and answer).
- `sft`: next-token prediction on the answer tokens and `<eos>` only; the prompt is context.

Row b's loss is over the tokens of `targets[b]`, each predicted from `contexts[b]` and the targets
before it; `rsi.engine.forward.answer_loss` computes the mean over every target token of the batch
through the engine's fastest forward for the model (no padding computed). A new objective is one
function registered here.
"""

from __future__ import annotations

from collections.abc import Callable

from transformers import PreTrainedTokenizerBase

from rsi.engine.tokenizer import encode_answer, encode_prompt
from rsi.records import Example
from rsi.registry import Registry

Tokens = list[list[int]]
Objective = Callable[[PreTrainedTokenizerBase, list[Example]], tuple[Tokens, Tokens]]
OBJECTIVES: Registry[Objective] = Registry("objective")


def _encoded(tokenizer: PreTrainedTokenizerBase, ex: Example) -> tuple[list[int], list[int]]:
    return encode_prompt(tokenizer, ex.prompt, ex.prefix), encode_answer(tokenizer, ex.answer, ex.prefix)


def pretrain_batch(tokenizer: PreTrainedTokenizerBase, examples: list[Example]) -> tuple[Tokens, Tokens]:
    """Every token after the first (`<bos>`) is a target."""
    seqs = [[*p, *a] for p, a in (_encoded(tokenizer, ex) for ex in examples)]
    return [s[:1] for s in seqs], [s[1:] for s in seqs]


def sft_batch(tokenizer: PreTrainedTokenizerBase, examples: list[Example]) -> tuple[Tokens, Tokens]:
    """The answer and its end token are the targets; the prompt is their context."""
    pairs = [_encoded(tokenizer, ex) for ex in examples]
    return [p for p, _ in pairs], [a for _, a in pairs]


OBJECTIVES.register("pretrain", pretrain_batch)
OBJECTIVES.register("sft", sft_batch)
