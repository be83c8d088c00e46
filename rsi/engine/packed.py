"""GRPO's training forward for Llama-family models: log-probabilities of completions, padding never computed.

A GRPO batch is B = P * G completions of P distinct prompts, of uneven lengths (an answer ends
at its end-of-sequence token). The Hugging Face forward runs every row as prompt + completion
padded to the longest, so it computes each prompt G times and every padding position. Here the
linear layers and the MLP, which hold nearly all the arithmetic, run over *packed* tokens only:
each distinct prompt's real tokens once, and each completion's real tokens except its last (whose
output predicts nothing). Only attention, which is cheap at these lengths, sees a padded layout:
per layer the packed queries, keys and values are scattered into (rows, heads, length, dim)
buffers, prompts attend causally to themselves, each completion attends to its prompt's keys
(shared by broadcast when the rows are equal consecutive groups) and causally to its own, and
the outputs are gathered back into packed order. Logits are computed only where a completion
token is predicted, and log-softmax in chunks of rows, so a large vocabulary's (tokens, vocab)
float32 tensors never exist for the whole batch at once.

The result equals running every row alone through the model (tests hold values and gradients to
the Hugging Face forward's); `rsi.engine.forward.training` says which models qualify.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel

from rsi.engine.layout import Layout, shift
from rsi.engine.lean import (
    Layer,
    attend,
    finish,
    project_qkv,
    rms_norm,
    rope_tables,
)
from rsi.engine.linear import linear

LOGIT_CHUNK_ELEMENTS = 2**24  # log-softmax over at most this many logits at a time (64 MB in float32)


def packed_logprobs(model: PreTrainedModel, layers: list[Layer], prompt_ids: torch.Tensor, prompt_attn: torch.Tensor,
                    rows: torch.Tensor, completions: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities (B, C) of each completion's tokens given its prompt, and their mask (B, C).

    `model` is the plain model (a peft wrapper's base model; `layers` carry the adapters);
    `prompt_ids` / `prompt_attn` (U, Lp) are the distinct prompts, left-padded; `rows` (B,) names
    row b's prompt; `completions[b]` are row b's sampled tokens; C is the longest completion.
    """
    U, Lp = prompt_ids.shape
    B, C = len(completions), max(1, max(map(len, completions)))
    lens = torch.tensor([len(c) for c in completions])
    comp = torch.zeros((B, C), dtype=torch.long)
    for b, c in enumerate(completions):
        comp[b, : len(c)] = torch.tensor(c, dtype=torch.long)
    mask = (torch.arange(C)[None] < lens[:, None]).float()  # (B, C)

    # Packed inputs: the prompts' real tokens, then every completion token but each row's last.
    Ci = max(C - 1, 1)
    prompt_real = prompt_attn.flatten().nonzero().squeeze(1)  # (Np,) indices into U * Lp
    comp_real = (torch.arange(Ci)[None] < (lens - 1)[:, None]).flatten().nonzero().squeeze(1)  # (Nc,) into B * Ci
    starts = prompt_attn.sum(-1)[rows]  # (B,) each completion's first position
    ids = torch.cat([prompt_ids.flatten()[prompt_real], comp[:, :Ci].flatten()[comp_real]])  # (N,)
    positions = torch.cat([((prompt_attn.cumsum(-1) - 1).clamp(min=0)).flatten()[prompt_real],
                           (starts[:, None] + torch.arange(Ci)[None]).flatten()[comp_real]])
    Np = len(prompt_real)

    x = model.model.embed_tokens(ids)  # (N, hidden)
    cos, sin = rope_tables(model, positions[None])
    rope = cos[0], sin[0]  # (N, H + 2KV, D)
    layout = Layout(model, U, Lp, B, Ci, rows, prompt_real, comp_real, prompt_attn)
    for w in layers:
        x = _block(model, w, x, rope, Np, layout)

    # The last prompt position predicts token 0; completion input t predicts token t + 1.
    last_packed = prompt_attn.sum(-1).cumsum(0) - 1  # (U,) each prompt's last token among the packed ones
    predicted = torch.cat([torch.arange(B) * C, shift(comp_real, Ci, C)])  # (B + Nc,) in B * C
    logp = target_logprobs(model, torch.cat([x[last_packed][rows], x[Np:]]), comp.flatten()[predicted])
    logp = logp.new_zeros(B * C).index_put((predicted,), logp).view(B, C)
    return logp * mask, mask


def _block(model, w: Layer, x: torch.Tensor, rope, Np: int, lay: Layout) -> torch.Tensor:
    """One decoder block over packed tokens x (N, hidden)."""
    H, KV = lay.H, lay.KV
    qkv = project_qkv(x, w, *rope, model.config.rms_norm_eps)  # (N, H + 2KV, D)
    p, c = lay.prompts(qkv), lay.completions(qkv)  # (U, H + 2KV, Lp, D), (B, H + 2KV, Ci, D)
    qp, kp, vp = p[:, :H], p[:, H:H + KV], p[:, H + KV:]
    qc, kc, vc = c[:, :H], c[:, H:H + KV], c[:, H + KV:]
    att_p = attend(qp, kp, vp, lay.prompt_mask, w.scale)  # (U, H, Lp, D)
    keys, values = torch.cat([lay.gather(kp), kc], dim=2), torch.cat([lay.gather(vp), vc], dim=2)
    att_c = attend(qc, keys, values, lay.comp_mask, w.scale)  # (B, H, Ci, D)
    att = lay.packed(att_p, att_c).flatten(1)  # (N, H * D)
    return finish(x, w, att, model.config.rms_norm_eps)


def target_logprobs(model, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(lm_head(norm(h)))[target] for rows h (n, hidden), a chunk of rows at a time."""
    vocab = model.lm_head.weight.shape[0]
    step = max(1, LOGIT_CHUNK_ELEMENTS // vocab)
    if len(h) <= step:
        return _chunk_logprobs(model.model.norm.weight, model.lm_head.weight, model.config.rms_norm_eps, h, targets)
    parts = [checkpoint(_chunk_logprobs, model.model.norm.weight, model.lm_head.weight, model.config.rms_norm_eps,
                        h[i:i + step], targets[i:i + step], use_reentrant=False) for i in range(0, len(h), step)]
    return torch.cat(parts)


def _chunk_logprobs(norm_w, head_w, eps, h, targets):
    logits = linear(rms_norm(h, norm_w, eps), head_w).float()  # (n, V)
    return logits.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
