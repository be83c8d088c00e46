"""GRPO's on-policy update without a second forward: back-propagate through the sampler's own forward.

An on-policy GRPO update differentiates the log-probabilities of the sampled completions under
the weights that sampled them. The sampler (`rsi.engine.lean.LeanDecoder` with `trace=True`) has
already computed that forward, token by token: it keeps each layer's activations (input, rotated
q|k|v, attention output, residual after attention, gate|up), and this module runs the backward
over them by hand (`rsi.engine.backprop`), so the update costs a backward pass and no forward pass.

`tape_logprobs` returns the log-probabilities (B, C) with an autograd graph like any forward's:
the LM head and log-softmax run under autograd on the recorded final hidden states, which come
out of `_Replay`, an autograd function whose backward is the hand-written decoder backward and
returns every decoder parameter's gradient. The result is the model's own function: tests hold
values and gradients to autograd through the Hugging Face forward.

Tokens are packed as in `rsi.engine.packed` (prompts' real tokens, then completion inputs), the
completion inputs step by step (every row's input at step 0, then step 1, ...), which is the
order the sampler produced them in, so packing is one concatenation per recorded tensor.

Scope: plain models `rsi.engine.lean` covers (a peft-wrapped model trains through `rsi.engine.packed`, whose
LoRA path is cheaper than full weight gradients); valid only at the weights that sampled, so only
the first of `inner_updates` uses it (`rsi.learn.grpo` decides).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from rsi.engine.backprop import block_backward
from rsi.engine.layout import Layout, shift
from rsi.engine.lean import fused_layers, heads, rope_tables
from rsi.engine.packed import target_logprobs

COMPACT_BELOW = 0.8  # the share of real tokens below which a trace's filler rows are dropped first
MAX_TRACE_BYTES = 4 * 2**30  # a generation whose recorded activations would need more is not recorded


@dataclass
class Trace:
    """One decode batch's forward: U prompts (U, T) and their mask, which prompt each of B rows
    samples, and per layer the five recorded activations over N = U * T + S * B token rows (every
    prompt position, then every row at each of the S decode steps, step by step); the tokens fed
    at each step (S, B); the final hidden states of the prompts' last positions and of every step
    (U + S * B, hidden)."""

    prompt_ids: torch.Tensor
    prompt_attn: torch.Tensor
    rows: torch.Tensor
    acts: list[tuple[torch.Tensor, ...]]  # per layer: x, q|k|v (rotated, q scaled), attention, x + o, gate|up
    fed: torch.Tensor
    final: torch.Tensor


class Recorder:
    """What `rsi.engine.lean.LeanDecoder` calls while it samples: writes each layer's activations into
    buffers laid out as `Trace` says, sized for the whole generation when the prompts arrive.

    `rsi.engine.generate.generate(..., recorder=r)` calls `start` (the previous generation's traces end
    there: their buffers are reused, which spares the page faults of fresh memory every step), then
    `begin` ... `finish` once per decode batch; `r.traces` is then one `(rows, Trace)` per batch. A
    batch whose buffers would pass `MAX_TRACE_BYTES` is not recorded (`begin` says so), and its
    update runs a second forward instead.
    """

    def __init__(self) -> None:
        self.traces: list[tuple[list[int], Trace]] = []
        self.acts: list | None = None
        self._pool: list[tuple[list, torch.Tensor]] = []  # per batch of a generation: activations, finals
        self._batch = 0

    def start(self) -> None:
        self.traces, self._batch = [], 0

    def begin(self, model: PreTrainedModel, ids: torch.Tensor, attn: torch.Tensor | None, rows: torch.Tensor,
              steps: int) -> bool:
        """Buffers for U prompts (U, T) sampled by `rows` for up to `steps` decode steps; False if too big."""
        cfg, (U, T), B = model.config, ids.shape, len(rows)
        H, KV, D = heads(cfg)
        hidden, n = cfg.hidden_size, U * T + steps * B
        widths = [(hidden,), (H + 2 * KV, D), (H * D,), (hidden,), (2 * cfg.intermediate_size,)]
        dtype = model.lm_head.weight.dtype
        per_row = sum(math.prod(w) for w in widths) * cfg.num_hidden_layers * dtype.itemsize
        self.acts = None
        if n * per_row > MAX_TRACE_BYTES:
            return False
        k, self._batch = self._batch, self._batch + 1
        shapes = [[(n, *w) for w in widths]] * cfg.num_hidden_layers
        if k < len(self._pool) and _fits(self._pool[k], shapes, (U + steps * B, hidden), dtype):
            acts, finals = self._pool[k]
        else:
            acts = [tuple(torch.empty(shape, dtype=dtype) for shape in layer) for layer in shapes]
            finals = torch.empty((U + steps * B, hidden), dtype=dtype)
            self._pool[k:k + 1] = [(acts, finals)]
        self.acts, self.finals = acts, finals
        self.fed = torch.empty((steps, B), dtype=torch.long)
        self.prompts = ids, torch.ones_like(ids) if attn is None else attn, rows
        self.at, self.final_at, self.steps = 0, 0, 0
        return True

    def finish(self, rows: list[int]) -> None:
        """The decode batch of completions `rows` (indices i * n + j) is done: keep its trace."""
        if self.acts is not None:
            self.traces.append((rows, self.trace()))
            self.acts = None

    def step(self, tokens: torch.Tensor) -> None:
        """A decode step starts with `tokens` (B,) as input."""
        U, T = self.prompts[0].shape
        B = len(tokens)
        self.fed[self.steps] = tokens
        self.at, self.final_at = U * T + self.steps * B, U + self.steps * B
        self.steps += 1

    def layer(self, i: int, acts: tuple[torch.Tensor, ...]) -> None:
        for buf, t in zip(self.acts[i], acts, strict=True):
            flat = t.flatten(0, 1)
            buf[self.at:self.at + len(flat)] = flat.view(len(flat), *buf.shape[1:])

    def final(self, x_last: torch.Tensor) -> None:
        self.finals[self.final_at:self.final_at + len(x_last)] = x_last

    def trace(self) -> Trace:
        ids, attn, rows = self.prompts
        n, m = ids.numel() + self.steps * len(rows), len(ids) + self.steps * len(rows)
        return Trace(ids, attn, rows, [tuple(b[:n] for b in layer) for layer in self.acts], self.fed[:self.steps],
                     self.finals[:m])


def _fits(pooled: tuple[list, torch.Tensor], shapes, finals_shape, dtype) -> bool:
    """Whether pooled buffers have room for these shapes (rows may be fewer, all else equal)."""
    acts, finals = pooled
    have = [[t.shape for t in layer] for layer in acts]
    return (finals.dtype == dtype and len(have) == len(shapes) and finals.shape[0] >= finals_shape[0]
            and all(h[0] >= s[0] and h[1:] == s[1:] for hl, sl in zip(have, shapes, strict=True)
                    for h, s in zip(hl, sl, strict=True)))


def tape_logprobs(model: PreTrainedModel, trace: Trace, completions) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities (B, C) of the traced rows' completions and their mask, with a graph whose
    backward needs no forward pass (see the module docstring). `completions[b]` is row b's sample."""
    B, C = len(completions), max(1, max(map(len, completions)))
    lens = torch.tensor([len(c) for c in completions])
    if int(lens.max()) - 1 > len(trace.fed):
        raise ValueError(f"a completion of {int(lens.max())} tokens needs {int(lens.max()) - 1} traced steps, "
                         f"the trace has {len(trace.fed)}")
    if len(completions) != len(trace.rows):
        raise ValueError(f"the trace has {len(trace.rows)} rows, got {len(completions)} completions")
    comp = torch.zeros((B, C), dtype=torch.long)
    for b, c in enumerate(completions):
        comp[b, : len(c)] = torch.tensor(c, dtype=torch.long)
    mask = (torch.arange(C)[None] < lens[:, None]).float()
    tape = _Tape(model, trace, lens)
    final = _Replay.apply(tape, *tape.params)  # (B + Nc, hidden): the hidden states that predict tokens
    predicted = torch.cat([torch.arange(B) * C, shift(tape.predicting, tape.layout.Ci, C)])  # in B * C
    logp = target_logprobs(model, final, comp.flatten()[predicted])
    logp = logp.new_zeros(B * C).index_put((predicted,), logp).view(B, C)
    return logp * mask, mask


def traced_logprobs(model: PreTrainedModel, traces: list, completions: list, rows: list[int]):
    """`tape_logprobs` over `generate`'s traces (`(rows of the batch, Trace)` each), for the completions
    at flat indices `rows`, in that order: log-probabilities (len(rows), C) and mask, C their longest."""
    C = max(1, max(len(completions[r]) for r in rows))
    parts, masks, at = [], [], {}
    for batch_rows, trace in traces:
        logp, mask = tape_logprobs(model, trace, [completions[r] for r in batch_rows])
        pad = max(0, C - logp.shape[1])
        parts.append(F.pad(logp, (0, pad))[:, :C])
        masks.append(F.pad(mask, (0, pad))[:, :C])
        for r in batch_rows:
            at[r] = len(at)
    index = torch.tensor([at[r] for r in rows])
    return torch.cat(parts).index_select(0, index), torch.cat(masks).index_select(0, index)


class _Replay(torch.autograd.Function):
    """Forward: the recorded final hidden states. Backward: the decoder's, by hand, to its parameters."""

    @staticmethod
    def forward(ctx, tape, *params):
        ctx.tape = tape
        return tape.final

    @staticmethod
    def backward(ctx, grad):
        return None, *ctx.tape.backward(grad)


class _Tape:
    """The traced forward as packed tokens and the hand-written backward over it.

    The trace holds every prompt position and every row at every step, step by step. When nearly
    all of them are real tokens they are used as they are (views, no copy; the gradients of padding
    and of finished rows' filler come out zero); when at least `COMPACT_BELOW` of them are not, the
    real ones are gathered first, so the backward does not spend its arithmetic on filler.
    """

    def __init__(self, model: PreTrainedModel, trace: Trace, lens: torch.Tensor) -> None:
        self.model = model
        with torch.no_grad():
            self.layers = fused_layers(model)
        U, T = trace.prompt_ids.shape
        S, B = trace.fed.shape
        Ci = max(S, 1)
        grid = (torch.arange(B)[None] * Ci + torch.arange(S)[:, None]).flatten()  # step-major, into B * Ci
        alive = (torch.arange(S)[:, None] < (lens - 1)[None, :]).flatten()  # (S * B,) real completion inputs
        real = torch.cat([trace.prompt_attn.flatten().bool(), alive])  # (U * T + S * B,)
        keep = real.nonzero().squeeze(1) if float(real.float().mean()) < COMPACT_BELOW else None
        ids = torch.cat([trace.prompt_ids.flatten(), trace.fed.flatten()])
        starts = trace.prompt_attn.sum(-1)[trace.rows]  # each completion's first position
        positions = torch.cat([(trace.prompt_attn.cumsum(-1) - 1).clamp(min=0).flatten(),
                               (starts[None] + torch.arange(S)[:, None]).flatten()])
        # the rows whose hidden states predict a token: each row's prompt's last position, its real inputs
        heads_at = torch.cat([trace.rows * T + T - 1, U * T + alive.nonzero().squeeze(1)])
        prompt_at, comp_at = torch.arange(U * T), grid
        self.acts = trace.acts
        if keep is not None:
            self.acts = [tuple(t.index_select(0, keep) for t in layer) for layer in trace.acts]
            ids, positions = ids[keep], positions[keep]
            heads_at = torch.searchsorted(keep, heads_at)
            prompt_at = keep[keep < U * T]
            comp_at = grid[keep[keep >= U * T] - U * T]
        self.ids, self.heads_at = ids, heads_at
        self.layout = Layout(model, U, T, B, Ci, trace.rows, prompt_at, comp_at, trace.prompt_attn)
        cos, sin = rope_tables(model, positions[None])
        self.rope = cos[0], sin[0]  # (N, H + 2KV, D)
        self.predicting = grid[alive]  # (Nc,) into B * Ci: which token each completion head predicts from
        self.final = torch.cat([trace.final[trace.rows], trace.final[U + alive.nonzero().squeeze(1)]])
        self.params = _parameters(model)

    @torch.no_grad()
    def backward(self, grad: torch.Tensor) -> list[torch.Tensor]:
        """Gradients of every parameter in `_parameters` order, given d(final hidden states)."""
        dx = grad.new_zeros((len(self.ids), grad.shape[1])).index_add_(0, self.heads_at, grad)
        grads: list[list[torch.Tensor]] = []
        dims, eps = heads(self.model.config), self.model.config.rms_norm_eps
        for w, acts in zip(reversed(self.layers), reversed(self.acts), strict=True):
            dx, g = block_backward(w, acts, dx, self.layout, self.rope, eps, dims)
            grads.append(g)
        embedding = self.model.model.embed_tokens
        d_embed = torch.zeros_like(embedding.weight).index_add_(0, self.ids, dx)
        if embedding.padding_idx is not None:  # as nn.Embedding: the padding row gets no gradient
            d_embed[embedding.padding_idx] = 0
        return [*[t for g in reversed(grads) for t in g], d_embed]


def _parameters(model: PreTrainedModel) -> list[torch.Tensor]:
    """The decoder's parameters in `rsi.engine.backprop.block_backward`'s order, block by block, then the
    token embedding."""
    out = []
    for layer in model.model.layers:
        a, m = layer.self_attn, layer.mlp
        out += [layer.input_layernorm.weight, a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]
        if a.q_proj.bias is not None:
            out += [a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]
        out += [a.o_proj.weight, layer.post_attention_layernorm.weight, m.gate_proj.weight, m.up_proj.weight,
                m.down_proj.weight]
    return [*out, model.model.embed_tokens.weight]
