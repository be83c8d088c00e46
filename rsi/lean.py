"""A lean inference forward for Llama-family decoders, used by the sampler when the model allows it.

Sampling a small model on CPU is dominated by per-call overhead, not arithmetic: a Hugging Face
forward walks many modules, builds masks and grows a dynamic cache on every token. `LeanDecoder`
runs the same computation over the same weights with few tensor operations per layer: fused
QKV and gate/up matmuls (fused once per `generate` call, so training between calls is seen),
a preallocated KV cache written in place, and attention of a single query as three small ops
(`F.scaled_dot_product_attention` for longer queries).

GRPO samples G answers per prompt, so both the sampler (`LeanDecoder.prefill`) and the training
forward (`prefix_forward`) compute each distinct prompt once and let its samples attend to the
shared keys and values.

Supported: `llama`, `qwen2` and `smollm3` (including its no-RoPE layers, which the tiny model
uses everywhere), full attention, SiLU MLP, the model's own rotary embedding module (so any
rope scaling it implements). Anything else, or a model wrapped by peft, falls back to the
Hugging Face forward (`LeanDecoder.supports`). Tests check its logits against the HF forward.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

SUPPORTED = {"llama", "qwen2", "smollm3"}


class LeanDecoder:
    """Prefill then one-token steps with a fixed-size KV cache of `capacity` positions."""

    @staticmethod
    def supports(model: PreTrainedModel) -> bool:
        cfg = getattr(model, "config", None)
        if hasattr(model, "get_base_model") or cfg is None or cfg.model_type not in SUPPORTED:
            return False  # a peft wrapper included: sample from `backend.sampling_view(model)` instead
        if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(cfg, "mlp_bias", False):
            return False
        if getattr(cfg, "use_sliding_window", False) and getattr(cfg, "sliding_window", None):
            return False
        if any(getattr(m, "merged", True) is False for m in model.modules()):
            return False  # LoRA layers whose adapter is not merged into `.weight`
        return getattr(model.model.layers[0].self_attn.o_proj, "bias", None) is None

    @torch.no_grad()
    def __init__(self, model: PreTrainedModel, batch: int, capacity: int) -> None:
        self.model, self.layers = model, fused_layers(model)
        cfg = model.config
        kv_heads, head_dim = cfg.num_key_value_heads, _head_dim(cfg)
        shape = (len(self.layers), batch, kv_heads, capacity, head_dim)
        dtype = model.lm_head.weight.dtype
        self.k, self.v = torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype)
        self.length = 0
        self.key_ok: torch.Tensor | None = None  # (B, capacity) bool, only when rows are left-padded
        _, (cos, sin) = _embed(model, torch.zeros((1, 1), dtype=torch.long), torch.arange(capacity)[None])
        self.rope = cos[0, 0], sin[0, 0]  # (capacity, D): every step's rotation, computed once

    @torch.no_grad()
    def prefill(self, ids: torch.Tensor, attn: torch.Tensor | None, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, V) after the prompts. `ids` (U, T) are distinct prompts, `attn` (U, T) marks their real
        tokens when left-padded, and `rows` (B,) names each row's prompt (default: row b is prompt b).

        Each distinct prompt is run once and its keys and values are copied to every row that samples
        from it, so G samples of one prompt pay for one prefill.
        """
        U, T = ids.shape
        rows = torch.arange(U) if rows is None else rows
        if attn is not None:
            positions, mask = (attn.cumsum(-1) - 1).clamp(min=0), padded_mask(attn)
            self.key_ok = torch.zeros((len(rows), self.k.shape[3]), dtype=torch.bool)
            self.key_ok[:, :T] = attn.bool()[rows]
        else:
            positions, mask = torch.arange(T)[None].expand(U, T), None
        shape = (self.k.shape[0], U, *self.k.shape[2:3], T, self.k.shape[4])
        k, v = torch.zeros(shape, dtype=self.k.dtype), torch.zeros(shape, dtype=self.v.dtype)
        logits = forward(self.model, self.layers, ids, positions, mask, keep=1, cache=(k, v, 0))[:, -1]
        self.k[:, :, :, :T], self.v[:, :, :, :T] = k[:, rows], v[:, rows]
        self.length, self.positions = T, positions[rows, -1]
        return logits[rows]

    @torch.no_grad()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (B, V) after appending one token per row."""
        self.positions = self.positions + 1
        mask = None
        if self.key_ok is not None:
            self.key_ok[:, self.length] = True
            mask = self.key_ok[:, None, None, : self.length + 1]
        return self._forward(tokens[:, None], self.positions[:, None], mask, start=self.length)[:, -1]

    def _forward(self, ids, positions, mask, start: int) -> torch.Tensor:
        logits = forward(self.model, self.layers, ids, positions, mask, keep=1, cache=(self.k, self.v, start),
                         rope=self.rope)
        self.length = start + ids.shape[1]
        return logits


class Layer(NamedTuple):
    ln1: torch.Tensor
    wqkv: torch.Tensor  # q, k and v projections stacked
    bqkv: torch.Tensor | None
    wo: torch.Tensor
    ln2: torch.Tensor
    wgu: torch.Tensor  # gate and up projections stacked
    wd: torch.Tensor
    rope: bool


def _head_dim(cfg) -> int:
    return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


def fused_layers(model: PreTrainedModel) -> list[Layer]:
    """Each block's weights, projections concatenated (differentiable when grad is on)."""
    flags = getattr(model.config, "no_rope_layers", None) or [1] * model.config.num_hidden_layers
    out = []
    for layer, rope in zip(model.model.layers, flags, strict=True):
        a, m = layer.self_attn, layer.mlp
        bias = None if a.q_proj.bias is None else torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias])
        out.append(Layer(layer.input_layernorm.weight, torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]),
                         bias, a.o_proj.weight, layer.post_attention_layernorm.weight,
                         torch.cat([m.gate_proj.weight, m.up_proj.weight]), m.down_proj.weight, bool(rope)))
    return out


def forward(model: PreTrainedModel, layers: list[Layer], ids: torch.Tensor, positions: torch.Tensor,
            mask: torch.Tensor | None, keep: int, cache: tuple | None = None,
            rope: tuple | None = None) -> torch.Tensor:
    """Logits (B, keep, V) of the last `keep` positions of `ids` (B, T).

    `mask` (B, 1, T, K) bool or None for plain causal attention; `cache` (k, v, start) makes the
    keys and values of positions start .. start + T - 1 land in preallocated tensors and attend to
    everything before them. `rope` (cos, sin) tables over positions, when precomputed.
    """
    if rope is None:
        x, (cos, sin) = _embed(model, ids, positions)
    else:
        x, cos, sin = model.model.embed_tokens(ids), rope[0][positions][:, None], rope[1][positions][:, None]
    for i, w in enumerate(layers):
        q, k, v = _qkv(model, w, x, cos, sin)
        if cache is not None:
            ck, cv, start = cache
            T = ids.shape[1]
            ck[i, :, :, start:start + T] = k
            cv[i, :, :, start:start + T] = v
            k, v = ck[i, :, :, :start + T], cv[i, :, :, :start + T]
        x = _finish(model, w, x, _attend(q, k, v, mask))
    return _logits(model, x[:, -keep:])


def prefix_forward(model: PreTrainedModel, layers: list[Layer], prompt_ids: torch.Tensor, prompt_attn: torch.Tensor,
                   rows: torch.Tensor, completion_ids: torch.Tensor) -> torch.Tensor:
    """Logits (B, C, V) predicting each completion token, each distinct prompt computed once.

    `prompt_ids` / `prompt_attn` (U, Lp) are the distinct prompts, left-padded; `rows` (B,) names
    row b's prompt; `completion_ids` (B, C) are right-padded. The completions attend to their
    prompt's keys and values, gathered per row, so gradients from every sample of a prompt meet
    in that prompt's one computation: the same result as running each row in full, with the
    prompt's share of the work divided by the number of samples per prompt.
    """
    Lp, C = prompt_ids.shape[1], completion_ids.shape[1]
    xp, (cp, sp) = _embed(model, prompt_ids, (prompt_attn.cumsum(-1) - 1).clamp(min=0))
    starts = prompt_attn.sum(-1)[rows]  # (B,) each completion's first position
    xc, (cc, sc) = _embed(model, completion_ids, starts[:, None] + torch.arange(C)[None])
    prompt_mask = padded_mask(prompt_attn) if bool((prompt_attn == 0).any()) else None
    causal = torch.ones((C, C), dtype=torch.bool).tril()
    completion_mask = torch.cat([prompt_attn.bool()[rows][:, None, None, :].expand(-1, 1, C, Lp),
                                 causal[None, None].expand(len(rows), 1, C, C)], dim=-1)  # (B, 1, C, Lp + C)
    gather = _row_gather(rows, prompt_ids.shape[0])
    for w in layers:
        qp, kp, vp = _qkv(model, w, xp, cp, sp)
        qc, kc, vc = _qkv(model, w, xc, cc, sc)
        keys, values = torch.cat([gather(kp), kc], dim=2), torch.cat([gather(vp), vc], dim=2)
        xc = _finish(model, w, xc, _attend(qc, keys, values, completion_mask))
        xp = _finish(model, w, xp, _attend(qp, kp, vp, prompt_mask))
    first = _logits(model, xp[:, -1:])[rows]  # the last prompt position predicts completion token 0
    return torch.cat([first, _logits(model, xc[:, :-1])], dim=1)


def distinct_rows(prompts) -> tuple[list[int], torch.Tensor]:
    """(the first row of each distinct prompt, in order; for each row, the index of its prompt among them)."""
    seen: dict[tuple[int, ...], int] = {}
    firsts, index = [], []
    for b, p in enumerate(prompts):
        if tuple(p) not in seen:
            seen[tuple(p)] = len(firsts)
            firsts.append(b)
        index.append(seen[tuple(p)])
    return firsts, torch.tensor(index)


def _row_gather(rows: torch.Tensor, U: int):
    """t (U, ...) -> t[rows] (B, ...). When rows are U equal consecutive groups (GRPO's G samples per
    prompt) it is a broadcast, whose backward is a cheap sum, instead of an indexed scatter."""
    B = len(rows)
    if B % U == 0 and torch.equal(rows, torch.arange(U).repeat_interleave(B // U)):
        return lambda t: t[:, None].expand(U, B // U, *t.shape[1:]).reshape(B, *t.shape[1:])
    return lambda t: t[rows]


def _embed(model, ids, positions):
    x = model.model.embed_tokens(ids)
    cos, sin = model.model.rotary_emb(x, positions)  # (B, T, D)
    return x, (cos[:, None], sin[:, None])


def _qkv(model, w: Layer, x, cos, sin):
    cfg = model.config
    B, T, _ = x.shape
    H, KV, D = cfg.num_attention_heads, cfg.num_key_value_heads, _head_dim(cfg)
    h = _rms_norm(x, w.ln1, cfg.rms_norm_eps)
    qkv = F.linear(h, w.wqkv, w.bqkv).view(B, T, H + 2 * KV, D).transpose(1, 2)
    qk, v = qkv[:, : H + KV], qkv[:, H + KV:]
    if w.rope:
        qk = _rotate(qk, cos, sin)  # queries and keys in one go
    return qk[:, :H], qk[:, H:], v


def _attend(q, k, v, mask):
    """Attention of q (B, H, T, D) over k, v (B, KV, L, D); causal when `mask` is None."""
    groups = q.shape[1] // k.shape[1]
    if q.shape[2] == 1:  # one query per row: three small ops beat the fused kernel's set-up
        return _single_query_attention(q, k, v, mask, groups)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, enable_gqa=groups > 1)


def _finish(model, w: Layer, x, att):
    """The rest of the block: output projection, residual, MLP, residual."""
    B, T, _ = x.shape
    x = x + F.linear(att.transpose(1, 2).reshape(B, T, -1), w.wo)
    gate, up = F.linear(_rms_norm(x, w.ln2, model.config.rms_norm_eps), w.wgu).chunk(2, dim=-1)
    return x + F.linear(F.silu(gate) * up, w.wd)


def _logits(model, x):
    return F.linear(_rms_norm(x, model.model.norm.weight, model.config.rms_norm_eps), model.lm_head.weight)


def padded_mask(attn: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, T) causal mask over real tokens of left-padded rows (pad rows see themselves: no NaN)."""
    T = attn.shape[1]
    mask = torch.ones((T, T), dtype=torch.bool).tril()[None, None] & attn.bool()[:, None, None, :]
    return mask | torch.eye(T, dtype=torch.bool)[None, None]


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # as HF's LlamaRMSNorm in float32; F.rms_norm's kernel is slower on small CPU tensors
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _single_query_attention(q, k, v, mask, groups: int) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v for q (B, H, 1, D) and keys/values (B, KV, L, D)."""
    if groups > 1:
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, H, 1, L)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin
