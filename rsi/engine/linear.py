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


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return _dnn(x, w, b)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        g2 = grad.reshape(-1, grad.shape[-1])  # (M, N)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _dnn(grad, w.t(), None)  # (..., K) = grad @ w
        if ctx.needs_input_grad[1]:
            gw = weight_grad(g2, x.reshape(-1, x.shape[-1]))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g2.sum(0)
        return gx, gw, gb


ONEDNN = _probe()
SMALL = 1 << 20  # multiply-adds


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear(x, weight, bias)`, through oneDNN for float32 CPU tensors (see the module docstring)."""
    if (not ONEDNN or x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32
            or x.numel() * weight.shape[0] <= SMALL):
        return F.linear(x, weight, bias)
    grads = x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    if grads and torch.is_grad_enabled():
        return _Linear.apply(x, weight, bias)
    return _dnn(x, weight, bias)


def weight_grad(dy: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """dW (out, in) of y = x W^T from dy (M, out) and x (M, in): dy^T x, through oneDNN when worthwhile."""
    if ONEDNN and dy.dtype == torch.float32 and dy.numel() * x.shape[1] > SMALL:
        return _matmul_t(dy.t(), x.t())
    return dy.t() @ x
