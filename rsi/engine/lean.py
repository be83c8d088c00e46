"""A lean forward for Llama-family decoders: the sampler's (`LeanDecoder`) and the pieces GRPO's
training forward (`rsi.engine.packed`) is built from.

Sampling a small model on CPU is dominated by per-call overhead, not arithmetic: a Hugging Face
forward walks many modules, builds masks and grows a dynamic cache on every token. `LeanDecoder`
runs the same computation over the same weights with few tensor operations per layer:
- weights fused once per `generate` call (so training between calls is seen): q, k, v stacked,
  gate and up stacked, each RMSNorm's gain folded into the matmul after it and the attention
  scale into the query rows, so a norm is one reduction and a scale is free;
- rotary embedding as one multiply-add over all heads of the fused projection (`rope_tables`:
  value heads get cos 1, sin 0), with the rotate-half written as a roll and a sign;
- a preallocated KV cache (keys and values side by side, one in-place write per layer), and
  attention of a single query as three small ops, grouped-query heads without copying keys;
- matmuls through oneDNN (`rsi.engine.linear`).
GRPO samples G answers per prompt, so `LeanDecoder.prefill` computes each distinct prompt once
and copies its keys and values to the rows that sample from it.

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

from rsi.engine.linear import linear
from rsi.engine.lora import Lora, stacked_lora

SUPPORTED = {"llama", "qwen2", "smollm3"}


class LeanDecoder:
    """Prefill then one-token steps with a fixed-size KV cache of `capacity` positions."""

    @torch.no_grad()
    def __init__(self, model: PreTrainedModel, batch: int, capacity: int, recorder=None) -> None:
        self.model, self.layers = model, fused_layers(model, fold=True)
        self.rec = recorder  # an `rsi.engine.tape.Recorder`: keeps every layer's activations for a taped update
        self.head = model.lm_head.weight * model.model.norm.weight[None]  # (V, hidden): the final norm's gain folded
        self.eps = model.config.rms_norm_eps
        H, KV, D = heads(model.config)
        self.H = H
        dtype = model.lm_head.weight.dtype
        # Positions past the current length are never read, so no zeroing. Keys and values apart, so
        # that a slice of either is one strided batch of matrices (no copy before a matmul).
        shape = (len(self.layers), batch, KV, capacity, D)
        self.k, self.v = torch.empty(shape, dtype=dtype), torch.empty(shape, dtype=dtype)
        self.length = 0
        self.key_ok: torch.Tensor | None = None  # (B, capacity) bool, only when rows are left-padded
        self.table = rope_tables(model, torch.arange(capacity)[None])  # every position's rotation, computed once

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
        L, _, KV, _, D = self.k.shape
        own = torch.empty((L, U, KV, T, D), dtype=self.k.dtype), torch.empty((L, U, KV, T, D), dtype=self.v.dtype)
        if self.rec is not None and not self.rec.begin(self.model, ids, attn, rows, steps=self.k.shape[3] - T):
            self.rec = None  # too big to record: the update will run its own forward
        logits = self._forward(ids, positions, mask, own, 0)
        self.k[:, :, :, :T], self.v[:, :, :, :T] = own[0][:, rows], own[1][:, rows]
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
        if self.rec is not None:
            self.rec.step(tokens)
        logits = self._forward(tokens[:, None], self.positions[:, None], mask, (self.k, self.v), self.length)
        self.length += 1
        return logits

    def _forward(self, ids, positions, mask, cache: tuple[torch.Tensor, torch.Tensor], start: int) -> torch.Tensor:
        """Logits (B, V) of the last position of `ids` (B, T); keys and values of positions
        start .. start + T - 1 land in `cache` (k, v), and attention sees everything before them.

        `mask` (B, 1, T, K) bool or None for plain causal attention (then every row's positions
        are start .. start + T - 1 and the rotation tables are sliced, not gathered).
        """
        H, T = self.H, ids.shape[1]
        ck, cv = cache
        KV = ck.shape[2]
        x = self.model.model.embed_tokens(ids)  # (B, T, hidden)
        if mask is None:
            cos, sin = self.table[0][:, start:start + T], self.table[1][:, start:start + T]  # (1, T, H + 2KV, D)
        else:
            cos, sin = self.table[0][0, positions], self.table[1][0, positions]  # (B, T, H + 2KV, D)
        for i, w in enumerate(self.layers):
            x_in, qkv = x, project_qkv(x, w, cos, sin, self.eps)  # (B, T, H + 2KV, D)
            heads_first = qkv.transpose(1, 2)  # (B, H + 2KV, T, D)
            ck[i, :, :, start:start + T] = heads_first[:, H:H + KV]
            cv[i, :, :, start:start + T] = heads_first[:, H + KV:]
            k, v = ck[i, :, :, :start + T], cv[i, :, :, :start + T]  # (B, KV, L, D)
            att = attend(heads_first[:, :H], k, v, mask, w.scale).transpose(1, 2).reshape(*x.shape[:2], -1)
            keep = [] if self.rec is not None else None
            x = finish(x, w, att, self.eps, keep)
            if keep is not None:
                self.rec.layer(i, (x_in, qkv, att, *keep))  # x, q|k|v (rotated, q scaled), attention, x + o, g|u
        if self.rec is not None:
            self.rec.final(x[:, -1])
        return linear(rms_norm(x[:, -1], None, self.eps), self.head)


def architecture_supported(model: PreTrainedModel) -> bool:
    """Whether the lean forward computes exactly what this (unwrapped) model's own forward does."""
    cfg = getattr(model, "config", None)
    if cfg is None or cfg.model_type not in SUPPORTED:
        return False
    if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(cfg, "mlp_bias", False):
        return False
    if getattr(cfg, "use_sliding_window", False) and getattr(cfg, "sliding_window", None):
        return False
    return getattr(model.model.layers[0].self_attn.o_proj, "bias", None) is None


class Layer(NamedTuple):
    ln1: torch.Tensor | None  # None when folded into wqkv
    wqkv: torch.Tensor  # q, k and v projections stacked
    bqkv: torch.Tensor | None
    wo: torch.Tensor
    ln2: torch.Tensor | None  # None when folded into wgu
    wgu: torch.Tensor  # gate and up projections stacked
    wd: torch.Tensor
    rope: bool
    scale: float  # the attention softmax's scale (1.0 when folded into the query rows)
    lqkv: Lora | None = None  # LoRA adapters of a peft-wrapped model in training, per stacked projection
    lo: Lora | None = None
    lgu: Lora | None = None
    ld: Lora | None = None


def heads(cfg) -> tuple[int, int, int]:
    """(query heads, key/value heads, head dim)."""
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return cfg.num_attention_heads, cfg.num_key_value_heads, head_dim


def fused_layers(model: PreTrainedModel, fold: bool = False) -> list[Layer]:
    """Each block's weights, projections stacked (differentiable when grad is on), with the
    LoRA adapters of peft-wrapped projections (`rsi.engine.lora`) stacked alike.

    `fold` (sampling, a plain model): the norms' gains and the attention scale multiplied into the weights.
    """
    flags = getattr(model.config, "no_rope_layers", None) or [1] * model.config.num_hidden_layers
    scale = heads(model.config)[2] ** -0.5
    out = []
    for layer, rope in zip(model.model.layers, flags, strict=True):
        a, m = layer.self_attn, layer.mlp
        ln1, ln2 = layer.input_layernorm.weight, layer.post_attention_layernorm.weight
        qs = scale if fold else 1.0
        wqkv = torch.cat([a.q_proj.weight * qs if fold else a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])
        bqkv = None if a.q_proj.bias is None else torch.cat([a.q_proj.bias * qs, a.k_proj.bias, a.v_proj.bias])
        wgu = torch.cat([m.gate_proj.weight, m.up_proj.weight])
        if fold:
            out.append(Layer(None, wqkv * ln1[None], bqkv, a.o_proj.weight, None, wgu * ln2[None], m.down_proj.weight,
                             bool(rope), 1.0))
        else:
            out.append(Layer(ln1, wqkv, bqkv, a.o_proj.weight, ln2, wgu, m.down_proj.weight, bool(rope), scale,
                             stacked_lora([a.q_proj, a.k_proj, a.v_proj]), stacked_lora([a.o_proj]),
                             stacked_lora([m.gate_proj, m.up_proj]), stacked_lora([m.down_proj])))
    return out


def rope_tables(model: PreTrainedModel, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, signed sin), each (B, T, H + 2KV, D), for `project_qkv`'s rotation of the fused heads:
    query and key heads get the model's rotary embedding at `positions` (B, T), value heads cos 1, sin 0.
    The sign makes rotate-half a roll: rotate_half(x) * sin == x.roll(D / 2) * signed_sin."""
    H, KV, D = heads(model.config)
    probe = torch.zeros((1, 1, 1), dtype=model.model.embed_tokens.weight.dtype)
    cos, sin = model.model.rotary_emb(probe, positions)  # (B, T, D)
    sign = torch.cat([-torch.ones(D // 2), torch.ones(D - D // 2)]).to(sin.dtype)
    B, T = positions.shape
    qk, v = (B, T, H + KV, D), (B, T, KV, D)
    return (torch.cat([cos[:, :, None].expand(qk), torch.ones(v, dtype=cos.dtype)], dim=2),
            torch.cat([(sin * sign)[:, :, None].expand(qk), torch.zeros(v, dtype=sin.dtype)], dim=2))


def project_qkv(x, w: Layer, cos, sin, eps: float) -> torch.Tensor:
    """(..., hidden) -> queries, keys and values (..., H + 2KV, D), rotated where the layer uses RoPE."""
    qkv = project(rms_norm(x, w.ln1, eps), w.wqkv, w.bqkv, w.lqkv)
    qkv = qkv.view(*x.shape[:-1], cos.shape[-2], cos.shape[-1])
    if w.rope:
        qkv = torch.addcmul(qkv * cos, qkv.roll(cos.shape[-1] // 2, dims=-1), sin)
    return qkv


def attend(q, k, v, mask, scale: float):
    """Attention of q (B, H, T, D) over k, v (B, KV, L, D); causal when `mask` is None."""
    B, H, T, D = q.shape
    groups = H // k.shape[1]
    if T == 1:  # one query per row: three small ops beat the fused kernel's set-up
        q = q.reshape(B, k.shape[1], groups, D)  # query heads grouped by the key head they share
        scores = q @ k.transpose(-1, -2)  # (B, KV, groups, L); the scale is folded into q
        if scale != 1.0:
            scores = scores * scale
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return (torch.softmax(scores, dim=-1) @ v).view(B, H, 1, D)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, enable_gqa=groups > 1,
                                          scale=scale)


def finish(x, w: Layer, att, eps: float, keep: list | None = None):
    """The rest of the block: output projection, residual, MLP, residual. `keep` receives the
    residual after attention and the gate|up projection (for `rsi.engine.tape`)."""
    x = x + project(att, w.wo, None, w.lo)
    gu = project(rms_norm(x, w.ln2, eps), w.wgu, None, w.lgu)
    if keep is not None:
        keep += [x, gu]
    gate, up = gu.chunk(2, dim=-1)
    return x + project(F.silu(gate) * up, w.wd, None, w.ld)


def project(x, weight, bias, lora: Lora | None):
    """x W^T + b, plus the LoRA update x A^T B^T when there is an adapter."""
    y = linear(x, weight, bias)
    return y if lora is None else y + linear(linear(x, lora[0]), lora[1])


def padded_mask(attn: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, T) causal mask over real tokens of left-padded rows (pad rows see themselves: no NaN)."""
    T = attn.shape[1]
    mask = torch.ones((T, T), dtype=torch.bool).tril()[None, None] & attn.bool()[:, None, None, :]
    return mask | torch.eye(T, dtype=torch.bool)[None, None]


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    # as HF's LlamaRMSNorm in float32; F.rms_norm's kernel is slower on small CPU tensors
    normed = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return normed if weight is None else weight * normed


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
