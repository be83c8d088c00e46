"""Batched sampling with a KV cache: `generate(model, tokenizer, prompts, n, temperature)`.

Rows (prompt, sample) are sorted by prompt length and cut into batches. A batch whose prompts
all have the same length (every batch of a tiny-model task at one difficulty) needs no padding,
no attention mask and no position ids, which keeps the fast causal-attention path. A batch of
different lengths is left-padded, with an attention mask and position ids counted from each
row's first real token, so a real model sees each prompt exactly as it would alone. Each batch
is prefilled once and then decoded one token at a time from the cache until every row has
produced an end-of-sequence token or the budget is spent. Temperature 0 is greedy decoding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rsi.tokenizer import encode_prompt


@dataclass(frozen=True)
class Completion:
    text: str
    n_tokens: int  # generated tokens, the end-of-sequence token included
    finished: bool  # ended with an end-of-sequence token within the budget
    token_ids: tuple[int, ...] = ()  # the generated tokens (n_tokens of them), for RL's log-probabilities


def stop_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Every token that ends an answer: the tokenizer's eos and the model's generation-config eos ids."""
    ids = {tokenizer.eos_token_id}
    extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(extra) if isinstance(extra, list) else {extra}
    return {i for i in ids if i is not None}


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
    stops = stop_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    gen = torch.Generator().manual_seed(seed)
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    rows = sorted(((i, j) for i in range(len(prompts)) for j in range(n)), key=lambda r: len(encoded[r[0]]))
    out: list[list[Completion | None]] = [[None] * n for _ in prompts]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        tokens = _decode(model, [encoded[i] for i, _ in chunk], max_new_tokens, stops, pad, temperature, gen)
        for (i, j), toks in zip(chunk, tokens.tolist(), strict=True):
            end = next((t for t, tok in enumerate(toks) if tok in stops), None)
            toks = toks if end is None else toks[: end + 1]
            text = tokenizer.decode(toks, skip_special_tokens=True)
            out[i][j] = Completion(text=text, n_tokens=len(toks), finished=end is not None, token_ids=tuple(toks))
        if on_batch:
            on_batch(len(chunk))
    model.train(was_training)
    return out  # type: ignore[return-value]


def _decode(model, prompts: list[list[int]], max_new_tokens: int, stops: set[int], pad: int,
            temperature: float, gen: torch.Generator) -> torch.Tensor:
    """(B, max_new_tokens) sampled tokens; rows that stopped are filled with their stop token."""
    B, T = len(prompts), max(map(len, prompts))
    ids = torch.full((B, T), pad, dtype=torch.long)
    attn = torch.zeros((B, T), dtype=torch.long)
    for b, p in enumerate(prompts):
        ids[b, T - len(p):] = torch.tensor(p)
        attn[b, T - len(p):] = 1
    padded = bool((attn == 0).any())
    kwargs = {"attention_mask": attn, "position_ids": (attn.cumsum(-1) - 1).clamp(min=0)} if padded else {}
    stop_t = torch.tensor(sorted(stops))
    done = torch.zeros(B, dtype=torch.bool)
    filler = torch.full((B,), min(stops), dtype=torch.long)
    result = filler[:, None].repeat(1, max_new_tokens)
    out = model(input_ids=ids, use_cache=True, logits_to_keep=1, **kwargs)
    past, logits = out.past_key_values, out.logits[:, -1]  # (B, V)
    for t in range(max_new_tokens):
        if temperature > 0:
            probs = torch.softmax(logits.float() / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        else:
            nxt = logits.argmax(-1)
        nxt = torch.where(done, filler, nxt)
        result[:, t] = nxt
        done |= torch.isin(nxt, stop_t)
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        if padded:
            kwargs["position_ids"] = kwargs["position_ids"][:, -1:] + 1
            kwargs["attention_mask"] = torch.cat([kwargs["attention_mask"], torch.ones((B, 1), dtype=torch.long)], 1)
        out = model(input_ids=nxt[:, None], past_key_values=past, use_cache=True, **kwargs)
        past, logits = out.past_key_values, out.logits[:, -1]
    return result
