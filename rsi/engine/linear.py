"""Float32 linear layers through oneDNN on CPU, with their backward: `linear(x, weight, bias)`.

PyTorch's CPU `F.linear` calls MKL's sgemm. On AMD processors MKL takes a slower code path: on
the 2-core AMD EPYC (Zen 5) this project is developed on, a float32 1024 x 1024 matmul reaches
~205 GFLOP/s through MKL and ~440 GFLOP/s through oneDNN (`torch.ops.mkldnn._linear_pointwise`,
the kernel `torch.compile` itself emits for CPU linears), at the same float32 precision. The
shapes of a small model's decode step (64 rows) gain the same 2x. `benchmarks/grpo_speed.py`
prints both figures on the machine it runs on.

`linear` is a drop-in for `F.linear` used by rsi's own forwards (`rsi.engine.lean`, `rsi.engine.packed`):
float32 CPU tensors go through oneDNN, with a hand-written backward whose matmuls go through
oneDNN too (each weight gradient computed in whichever orientation the library does faster);
anything else (other dtypes, GPU tensors, a PyTorch build without oneDNN) is `F.linear`, and so
are products of at most `SMALL` multiply-adds, where oneDNN's ~10 us fixed cost per call (against
~1.5 us for `F.linear`) outweighs its speed (measured crossover: about a 64 x 128 x 128 product).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _probe() -> bool:
    """Whether this PyTorch build has oneDNN's linear kernel and it gives F.linear's result."""
    try:
        x, w = torch.randn(3, 5), torch.randn(4, 5)
        return bool(torch.allclose(_dnn(x, w, None), F.linear(x, w), atol=1e-5))
    except (AttributeError, RuntimeError):
        return False


def _dnn(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """x @ w.T (+ b) by oneDNN; x (..., K), w (N, K)."""
    return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")


def _matmul_t(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b.T for 2-D a (m, r), b (n, r); oneDNN is faster with the wider operand as its `weight`."""
    if a.shape[0] > b.shape[0]:
        return _dnn(b, a, None).t()
    return _dnn(a, b, None)


def bucket(m: int) -> int:
    """`m` rows rounded up to one of four sizes per octave (at most 25 % more, 12 % on average) from
    `BUCKET_FROM` rows on: oneDNN builds a kernel for every new shape (0.4-3 ms each at a small
    model's sizes, more than the product itself), and a batch of packed tokens has a new row count
    at nearly every step; rounded, a few shapes recur."""
    if m < BUCKET_FROM:
        return m
    step = 1 << max(0, m.bit_length() - 3)
    return -(-m // step) * step


def _padded(t: torch.Tensor, rows: int) -> torch.Tensor:
    """2-D `t` with zero rows appended up to `rows`."""
    if t.shape[0] == rows:
        return t
    out = t.new_zeros((rows, t.shape[1]))
    out[: t.shape[0]] = t
    return out


def _dnn_rows(x2: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """`_dnn` of 2-D x2 (M, K), computed over `bucket(M)` rows."""
    m = x2.shape[0]
    return _dnn(_padded(x2, bucket(m)), w, b)[:m]


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b):
        x2 = x.reshape(-1, x.shape[-1])
        xp = _padded(x2, bucket(x2.shape[0]))  # kept padded: the weight gradient reduces over these rows
        ctx.save_for_backward(xp, w)
        ctx.has_bias, ctx.rows = b is not None, x2.shape[0]
        return _dnn(xp, w, b)[: x2.shape[0]].view(*x.shape[:-1], w.shape[0])

    @staticmethod
    def backward(ctx, grad):
        xp, w = ctx.saved_tensors
        g2 = grad.reshape(-1, grad.shape[-1])  # (M, N)
        gp = _padded(g2, xp.shape[0])
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _dnn(gp, w.t(), None)[: ctx.rows].view(*grad.shape[:-1], w.shape[1])  # grad @ w
        if ctx.needs_input_grad[1]:
            gw = weight_grad(gp, xp)  # the zero rows add nothing
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g2.sum(0)
        return gx, gw, gb


ONEDNN = _probe()
SMALL = 1 << 20  # multiply-adds
BUCKET_FROM = 256  # rows


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear(x, weight, bias)`, through oneDNN for float32 CPU tensors (see the module docstring)."""
    if (not ONEDNN or x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32
            or x.numel() * weight.shape[0] <= SMALL):
        return F.linear(x, weight, bias)
    grads = x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    if grads and torch.is_grad_enabled():
        return _Linear.apply(x, weight, bias)
    return _dnn_rows(x.reshape(-1, x.shape[-1]), weight, bias).view(*x.shape[:-1], weight.shape[0])


def weight_grad(dy: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """dW (out, in) of y = x W^T from dy (M, out) and x (M, in): dy^T x, through oneDNN when worthwhile."""
    if ONEDNN and dy.dtype == torch.float32 and dy.numel() * x.shape[1] > SMALL:
        rows = bucket(dy.shape[0])  # the reduction's length, rounded as `linear` rounds rows
        return _matmul_t(_padded(dy, rows).t(), _padded(x, rows).t())
    return dy.t() @ x
