"""rsi.engine.linear: oneDNN's float32 linear and its hand-written backward equal F.linear's."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from rsi.engine import linear as lin


def test_the_onednn_kernel_is_used_on_this_build():
    assert lin.ONEDNN  # the pinned CPU torch has it; without it rsi silently falls back to F.linear


@pytest.mark.parametrize("shape", [(7, 16), (3, 5, 16), (40, 16)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("out", [4, 64])  # weight-gradient orientation differs with the wider operand
def test_values_and_gradients_match_f_linear(shape, bias, out, monkeypatch):
    monkeypatch.setattr(lin, "SMALL", 0)  # these small products would otherwise go to F.linear
    torch.manual_seed(0)
    x = torch.randn(shape, requires_grad=True)
    w = torch.randn(out, 16, requires_grad=True)
    b = torch.randn(out, requires_grad=True) if bias else None
    g = torch.randn(*shape[:-1], out)
    got = lin.linear(x, w, b)
    grads = torch.autograd.grad(got, [x, w] + ([b] if bias else []), g)
    want = F.linear(x, w, b)
    wants = torch.autograd.grad(want, [x, w] + ([b] if bias else []), g)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for a, e in zip(grads, wants, strict=True):
        torch.testing.assert_close(a, e, atol=1e-4, rtol=1e-5)


def test_gradient_only_where_asked_and_other_dtypes_fall_back():
    x, w = torch.randn(5, 8), torch.randn(3, 8, requires_grad=True)
    (gw,) = torch.autograd.grad(lin.linear(x, w).sum(), [w])
    torch.testing.assert_close(gw, torch.ones(5, 3).t() @ x)
    xd, wd = x.double(), w.detach().double()
    assert lin.linear(xd, wd).dtype == torch.float64
    torch.testing.assert_close(lin.linear(xd, wd), F.linear(xd, wd))


def test_import_caps_onednn_kernel_caches_unless_the_user_set_them():
    """`import rsi` bounds oneDNN's per-shape kernel caches (their default let a long run grow by
    hundreds of MB: benchmarks/soak.py); a value the user already set is kept."""
    code = "import os, rsi; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'], os.environ['LRU_CACHE_CAPACITY'])"
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["64", "64"]
    env["LRU_CACHE_CAPACITY"] = "7"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["64", "7"]
