"""Batched sampling with a KV cache: `generate(model, tokenizer, prompts, n, temperature)`.

Prompts are grouped by token length so a batch needs no padding (and so no attention mask,
which keeps the fast causal-attention path); each group is prefilled once and then decoded one
token at a time from the cache until every row has produced `<eos>` or the token budget is spent.
Temperature 0 is greedy decoding.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rsi.tokenizer import text_encoder


@dataclass(frozen=True)
class Completion:
    text: str
    n_tokens: int  # generated tokens, <eos> included
    finished: bool  # ended with <eos> within the budget


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    return [tokenizer.bos_token_id, *text_encoder(tokenizer)(prompt)]


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    max_new_tokens: int,
    n: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
    batch_size: int = 256,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[Completion]]:
    """`n` completions for each prompt (result[i][j] is the j-th for prompts[i]).

    `on_batch(k)` is called after each batch with the number of rows it finished (for progress bars).
    """
    was_training = model.training
    model.eval()
    eos = tokenizer.eos_token_id
    gen = torch.Generator().manual_seed(seed)
    rows = [(i, j, encode_prompt(tokenizer, p)) for i, p in enumerate(prompts) for j in range(n)]
    by_len: dict[int, list[tuple[int, int, list[int]]]] = defaultdict(list)
    for row in rows:
        by_len[len(row[2])].append(row)
    out: list[list[Completion | None]] = [[None] * n for _ in prompts]
    for length in sorted(by_len):
        group = by_len[length]
        for start in range(0, len(group), batch_size):
            chunk = group[start:start + batch_size]
            ids = torch.tensor([r[2] for r in chunk])  # (B, T)
            tokens = _decode(model, ids, max_new_tokens, eos, temperature, gen)  # (B, max_new)
            for (i, j, _), toks in zip(chunk, tokens.tolist(), strict=True):
                finished = eos in toks
                toks = toks[: toks.index(eos) + 1] if finished else toks
                text = tokenizer.decode(toks, skip_special_tokens=True)
                out[i][j] = Completion(text=text, n_tokens=len(toks), finished=finished)
            if on_batch:
                on_batch(len(chunk))
    model.train(was_training)
    return out  # type: ignore[return-value]


def _decode(model, ids, max_new_tokens, eos, temperature, gen) -> torch.Tensor:
    B = ids.shape[0]
    done = torch.zeros(B, dtype=torch.bool)
    result = torch.full((B, max_new_tokens), eos, dtype=torch.long)
    out = model(input_ids=ids, use_cache=True)
    past, logits = out.past_key_values, out.logits[:, -1]  # (B, V)
    for t in range(max_new_tokens):
        if temperature > 0:
            probs = torch.softmax(logits.float() / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        else:
            nxt = logits.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
        result[:, t] = nxt
        done |= nxt == eos
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        out = model(input_ids=nxt[:, None], past_key_values=past, use_cache=True)
        past, logits = out.past_key_values, out.logits[:, -1]
    return result
