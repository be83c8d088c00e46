"""The backward pass of a Llama-family decoder block, by hand, from activations a forward recorded.

Used by `rsi.engine.tape`, which records the sampler's forward and so needs no second forward for an
on-policy update. Everything works on packed tokens (N, ...): the rows of all sequences' real
tokens, in any order, with a `Layout` saying where each sits in the padded attention buffers.

Per block, with n = x / rms(x) and stacked projections as in `rsi.engine.lean.fused_layers`:
    q|k|v = rope((n1 * ln1) Wqkv^T + b);  a = attention(q, k, v);  x2 = x + a Wo^T
    g|u = (n2 * ln2) Wgu^T with n2 = x2 / rms(x2);  y = x2 + (silu(g) * u) Wd^T
`block_backward` returns d x and every weight's gradient from d y. Attention's backward
(`attention_backward`) recomputes the probabilities from the recorded queries and keys (small:
sequences are short) and applies the softmax backward; queries arrive already multiplied by the
attention scale (the sampler folds it into the weights), so no scale appears here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rsi.engine.linear import linear
from rsi.engine.linear import weight_grad as wgrad


def block_backward(w, acts, dy: torch.Tensor, lay, rope, eps: float, heads: tuple[int, int, int]):
    """(d x, [d ln1, d Wq, d Wk, d Wv, (d bq, d bk, d bv), d Wo, d ln2, d Wgate, d Wup, d Wdown]).

    `w` is the block's `rsi.engine.lean.Layer` (unfolded), `acts` its recorded (x, qkv, attention, x2, g|u)
    over the N packed tokens, `dy` (N, hidden) the gradient of its output, `lay` the attention layout,
    `rope` the (cos, signed sin) tables (N, H + 2KV, D) of the packed tokens.
    """
    H, KV, D = heads
    x, qkv, att, x2, gu = acts
    # MLP; few passes over the (N, intermediate) tensors, which are memory-bound here
    g, u = gu.chunk(2, dim=-1)
    silu = F.silu(g)
    d_wd = wgrad(dy, silu * u)
    da = linear(dy, w.wd.t())
    d_gu = torch.empty_like(gu)
    inter = g.shape[1]
    torch.mul(da, silu, out=d_gu[:, inter:])  # d up
    torch.ops.aten.silu_backward.grad_input(da * u, g, grad_input=d_gu[:, :inter])  # d gate
    n2, r2 = normed(x2, eps)
    d_wgu = wgrad(d_gu, n2 * w.ln2)
    dh2 = linear(d_gu, w.wgu.t())
    d_ln2 = (dh2 * n2).sum(0)
    dx2 = dy + rms_backward(dh2 * w.ln2, n2, r2)
    # attention
    d_wo = wgrad(dx2, att)
    d_att = linear(dx2, w.wo.t()).view(-1, H, D)
    d_qkv = attention_backward(qkv, d_att, lay, heads)  # (N, H + 2KV, D)
    d_qkv[:, :H] *= w.scale  # the recorded queries carry the attention scale
    if w.rope:  # the rotation's transpose: rotate back
        cos, sin = rope
        d_qkv = torch.addcmul(d_qkv * cos, d_qkv.roll(D // 2, dims=-1), -sin)
    d_qkv = d_qkv.flatten(1)
    n1, r1 = normed(x, eps)
    d_wqkv = wgrad(d_qkv, n1 * w.ln1)
    dh1 = linear(d_qkv, w.wqkv.t())
    d_ln1 = (dh1 * n1).sum(0)
    dx = dx2 + rms_backward(dh1 * w.ln1, n1, r1)
    qd, kd = H * D, KV * D
    out = [d_ln1, d_wqkv[:qd], d_wqkv[qd:qd + kd], d_wqkv[qd + kd:]]
    if w.bqkv is not None:
        db = d_qkv.sum(0)
        out += [db[:qd], db[qd:qd + kd], db[qd + kd:]]
    return dx, [*out, d_wo, d_ln2, d_wgu[:inter], d_wgu[inter:], d_wd]


def attention_backward(qkv: torch.Tensor, d_att: torch.Tensor, lay, heads: tuple[int, int, int]):
    """d q|k|v (N, H + 2KV, D) of the packed attention output from its gradient (N, H, D)."""
    H, KV, _ = heads
    p, c = lay.prompts(qkv), lay.completions(qkv)  # (U, H + 2KV, Lp, D), (B, H + 2KV, Ci, D)
    kp, vp = p[:, H:H + KV], p[:, H + KV:]
    keys = torch.cat([lay.gather(kp), c[:, H:H + KV]], dim=2)  # (B, KV, Lp + Ci, D)
    values = torch.cat([lay.gather(vp), c[:, H + KV:]], dim=2)
    G = H // KV
    dqc, dkc, dvc = _softmax_attention_backward(c[:, :H], keys, values, lay.grouped_mask("completions", G),
                                                lay.completions(d_att))
    dqp, dkp, dvp = _softmax_attention_backward(p[:, :H], kp, vp, lay.grouped_mask("prompts", G), lay.prompts(d_att))
    Lp = lay.Lp
    dkp = dkp + lay.ungather(dkc[:, :, :Lp])  # the prompt's keys serve every row that samples from it
    dvp = dvp + lay.ungather(dvc[:, :, :Lp])
    d_qkv = torch.empty_like(qkv)  # (N, H + 2KV, D)
    lay.pack_into(d_qkv[:, :H], dqp, dqc)
    lay.pack_into(d_qkv[:, H:H + KV], dkp, dkc[:, :, Lp:])
    lay.pack_into(d_qkv[:, H + KV:], dvp, dvc[:, :, Lp:])
    return d_qkv


def _softmax_attention_backward(q, k, v, allowed, d_out):
    """Gradients of softmax(q k^T) v (scale already in q) for q (R, H, T, D), k, v (R, KV, L, D);
    query heads share key heads in groups of G = H / KV; `allowed` (R, 1, G * T, L) is the mask
    for the grouped queries (`Layout.grouped_mask`)."""
    R, H, T, D = q.shape
    KV = k.shape[1]
    qg = q.reshape(R, KV, H // KV * T, D)  # query heads grouped by the key head they read
    scores = qg @ k.transpose(-1, -2)  # (R, KV, G * T, L)
    probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    dog = d_out.reshape(R, KV, H // KV * T, D)
    dv = probs.transpose(-1, -2) @ dog  # (R, KV, L, D)
    dprobs = dog @ v.transpose(-1, -2)
    ds = probs * (dprobs - (dprobs * probs).sum(-1, keepdim=True))
    dq = (ds @ k).view(R, H, T, D)
    dk = ds.transpose(-1, -2) @ qg
    return dq, dk, dv


def normed(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(x / rms(x), 1 / rms(x)) as HF's RMSNorm computes them."""
    r = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return x * r, r


def rms_backward(dn: torch.Tensor, n: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """d x of n = x * r, r = rsqrt(mean(x^2) + eps), from d n."""
    return r * (dn - n * (dn * n).mean(-1, keepdim=True))
