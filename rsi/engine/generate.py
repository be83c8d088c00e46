"""Batched sampling with a KV cache: `generate(model, tokenizer, prompts, n, temperature)`.

Rows (prompt, sample) are grouped by prompt length. A length shared by many rows (every prompt
of a tiny-model task at one difficulty) gets batches of its own that need no padding, no
attention mask and no position ids, which keeps the fast causal-attention path. Rarer lengths
(the English prompts of a real model) are pooled into batches of mixed length, left-padded, with
an attention mask and position ids counted from each row's first real token, so a real model
sees each prompt exactly as it would alone. Each batch is prefilled once and then decoded one
token at a time from the cache until every row has produced an end-of-sequence token or the
budget is spent. Temperature 0 is greedy decoding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rsi.engine import device, forward
from rsi.engine.forward import left_pad
from rsi.engine.lean import LeanDecoder, distinct_rows
from rsi.engine.tokenizer import encode_prompt, response_prefix


@dataclass(frozen=True)
class Completion:
    text: str  # the response: the tokenizer's response prefix (usually none) and the decoded tokens
    n_tokens: int  # generated tokens, the end-of-sequence token included
    finished: bool  # ended with an end-of-sequence token within the budget
    token_ids: tuple[int, ...] = ()  # the generated tokens (n_tokens of them), for RL's log-probabilities


def stop_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Every token that ends an answer: the tokenizer's eos and the model's generation-config eos ids."""
    return stop_tokens(tokenizer, getattr(model, "generation_config", None))


def stop_tokens(tokenizer: PreTrainedTokenizerBase, generation_config) -> set[int]:
    """The tokenizer's eos and a generation config's eos ids (it may be None)."""
    ids = {tokenizer.eos_token_id}
    extra = getattr(generation_config, "eos_token_id", None)
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
    recorder=None,
    prefix: str | None = None,
) -> list[list[Completion]]:
    """`n` completions for each prompt (result[i][j] is the j-th for prompts[i]).

    `on_batch(k)` is called after each batch with the number of rows it finished (for progress bars).
    `recorder` (an `rsi.engine.tape.Recorder`), when the lean sampler runs, records each batch's forward
    for an update without a second forward: `recorder.traces` holds one `(rows, Trace)` per batch,
    rows being the batch's completions as indices i * n + j. The prompts are problems, in the
    model's prompt template and with its response prefix, unless `prefix` is given: then they are
    fed as they are, and each completion starts with `prefix` (the self-play proposer's).
    """
    lean = forward.sampling(model) == "lean"
    was_training = model.training
    if not lean:
        model.eval()  # dropout off for the model's own forward (the lean one has none)
    if recorder is not None:
        recorder.start()
    stops = stop_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    gen = torch.Generator().manual_seed(seed)
    encoded = [encode_prompt(tokenizer, p, prefix) for p in prompts]
    prefix = response_prefix(tokenizer) if prefix is None else prefix
    out: list[list[Completion | None]] = [[None] * n for _ in prompts]
    for chunk in _batches(encoded, n, batch_size):
        rec = recorder if lean else None
        with device.autocast(model):
            tokens = _decode(model, lean, [encoded[i] for i, _ in chunk], max_new_tokens, stops, pad, temperature,
                             gen, rec)
        if rec is not None:
            rec.finish([i * n + j for i, j in chunk])
        for (i, j), toks in zip(chunk, tokens.tolist(), strict=True):
            end = next((t for t, tok in enumerate(toks) if tok in stops), None)
            toks = toks if end is None else toks[: end + 1]
            text = prefix + tokenizer.decode(toks, skip_special_tokens=True)
            out[i][j] = Completion(text=text, n_tokens=len(toks), finished=end is not None, token_ids=tuple(toks))
        if on_batch:
            on_batch(len(chunk))
    if not lean:
        model.train(was_training)
    return out  # type: ignore[return-value]


def _batches(encoded: list[list[int]], n: int, batch_size: int) -> list[list[tuple[int, int]]]:
    """Rows (prompt i, sample j) in batches: each prompt length with at least a quarter batch of rows
    gets its own unpadded batches; the rarer lengths are pooled, shortest first, into padded ones."""
    by_len: dict[int, list[tuple[int, int]]] = {}
    for i, ids in enumerate(encoded):
        by_len.setdefault(len(ids), []).extend((i, j) for j in range(n))
    pooled = [r for length in sorted(by_len) if len(by_len[length]) < batch_size / 4 for r in by_len[length]]
    groups = [by_len[length] for length in sorted(by_len) if len(by_len[length]) >= batch_size / 4]
    return [g[k:k + batch_size] for g in (*groups, pooled) for k in range(0, len(g), batch_size)]


def _decode(model, lean: bool, prompts: list[list[int]], max_new_tokens: int, stops: set[int], pad: int,
            temperature: float, gen: torch.Generator, recorder=None) -> torch.Tensor:
    """(B, max_new_tokens) sampled tokens; rows that stopped are filled with their stop token.
    `recorder` (lean sampler only) records the decoder's forward."""
    B, T = len(prompts), max(map(len, prompts))
    if lean:  # each distinct prompt is prefilled once for all its samples
        firsts, rows = distinct_rows(prompts)
        ids, attn = left_pad([prompts[b] for b in firsts], T, pad)
        decoder = LeanDecoder(model, B, T + max_new_tokens, recorder)
        logits, step = decoder.prefill(ids, attn if bool((attn == 0).any()) else None, rows), decoder.step
    else:
        ids, attn = left_pad(prompts, T, pad, on=device.of(model))
        logits, step = _hf_decoder(model, ids, attn if bool((attn == 0).any()) else None)
    at = logits.device
    stop_t = torch.tensor(sorted(stops), device=at)
    done = torch.zeros(B, dtype=torch.bool, device=at)
    filler = torch.full((B,), min(stops), dtype=torch.long, device=at)
    result = filler[:, None].repeat(1, max_new_tokens)
    for t in range(max_new_tokens):
        nxt = sample(logits, temperature, gen) if temperature > 0 else logits.argmax(-1)
        nxt = torch.where(done, filler, nxt)
        result[:, t] = nxt
        done |= torch.isin(nxt, stop_t)
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        logits = step(nxt)
    return result


def sample(logits: torch.Tensor, temperature: float, gen: torch.Generator) -> torch.Tensor:
    """One token per row of `logits` (B, V), drawn from softmax(logits / temperature).

    Inverse-CDF sampling: one uniform number per row, located in the row's cumulative
    probabilities. `torch.multinomial` gives the same distribution but draws or checks per
    vocabulary entry: ~50 ms a step for 64 rows of a 49k vocabulary on this CPU, against ~2 ms.
    The uniform numbers come from `gen` on the host, so a seed draws the same tokens on any device.
    """
    # float64: a float32 running sum over a 49k vocabulary drifts by ~1e-5, more than rare tokens' share
    cdf = torch.softmax(logits.float() / temperature, dim=-1).cumsum(-1, dtype=torch.float64)  # (B, V)
    u = torch.rand((cdf.shape[0], 1), generator=gen, dtype=cdf.dtype).to(cdf.device)
    u = u * cdf[:, -1:]  # scaled by the total
    # right=True: the first entry whose cumulative probability exceeds u, never a zero-probability one
    return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=cdf.shape[1] - 1)


def _hf_decoder(model, ids: torch.Tensor, attn: torch.Tensor | None):
    """The model's own forward with a dynamic cache: (first logits (B, V), step(tokens) -> logits)."""
    B = ids.shape[0]
    kwargs = {} if attn is None else {"attention_mask": attn, "position_ids": (attn.cumsum(-1) - 1).clamp(min=0)}
    out = model(input_ids=ids, use_cache=True, logits_to_keep=1, **kwargs)
    state = {"past": out.past_key_values}

    def step(tokens: torch.Tensor) -> torch.Tensor:
        if kwargs:
            kwargs["position_ids"] = kwargs["position_ids"][:, -1:] + 1
            ones = torch.ones((B, 1), dtype=torch.long, device=tokens.device)
            kwargs["attention_mask"] = torch.cat([kwargs["attention_mask"], ones], 1)
        o = model(input_ids=tokens[:, None], past_key_values=state["past"], use_cache=True, **kwargs)
        state["past"] = o.past_key_values
        return o.logits[:, -1]

    return out.logits[:, -1], step
