"""GRPO losses and gradients against values computed by hand on tiny tensors."""

import itertools
import math

import pytest
import torch

from rsi.learn.grpo_loss import STD_EPS, group_advantages, grpo_loss, keep_groups


def test_advantages_by_variant():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0])
    # group 1: mean 0.25, unbiased std sqrt((0.75^2 + 3 * 0.25^2) / 3) = 0.5; group 2: all equal
    expected = torch.tensor([0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0]) / (0.5 + STD_EPS)
    expected[4:] = 0
    assert torch.allclose(group_advantages(r, 4, "grpo"), expected)
    assert torch.allclose(group_advantages(r, 4, "dapo"), expected)
    assert torch.allclose(group_advantages(r, 4, "dr_grpo"), torch.tensor([0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0]))
    assert keep_groups(r, 4).tolist() == [True] * 4 + [False] * 4


def test_bad_shapes_and_names_are_rejected():
    with pytest.raises(ValueError, match="multiple of group_size=3"):
        group_advantages(torch.zeros(4), 3, "grpo")
    with pytest.raises(ValueError, match="unknown GRPO variant 'ppo'"):
        group_advantages(torch.zeros(4), 2, "ppo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2), torch.ones(2, 3), beta=0.1)


# one group of G = 2: row 0 has 2 real tokens, row 1 has 3
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
ADV = torch.tensor([0.5, -0.5])


def _on_policy_grad(variant, **kw):
    logp = torch.full((2, 3), -1.0, requires_grad=True)
    loss, stats = grpo_loss(logp, logp.detach(), ADV, MASK, variant, **kw)
    loss.backward()
    return loss.item(), logp.grad, stats


@pytest.mark.parametrize("variant, norm_row0, norm_row1", [
    ("grpo", 2 * 2, 3 * 2),      # 1/|o_i| per answer, then the mean over B = 2 answers
    ("dr_grpo", 2 * 3, 2 * 3),   # constant B * max_tokens (T = 3)
    ("dapo", 5, 5),              # all 5 real tokens of the batch
])
def test_on_policy_gradient_is_advantage_over_the_variants_normaliser(variant, norm_row0, norm_row1):
    loss, grad, stats = _on_policy_grad(variant)
    expected = torch.tensor([[-0.5 / norm_row0, -0.5 / norm_row0, 0.0], [0.5 / norm_row1] * 3])
    assert torch.allclose(grad, expected)
    # on policy the loss value is -(aggregated advantages)
    want = {"grpo": 0.0, "dr_grpo": -(2 * 0.5 - 3 * 0.5) / 6, "dapo": -(2 * 0.5 - 3 * 0.5) / 5}[variant]
    assert loss == pytest.approx(want)
    assert (stats.kl, stats.clip_fraction, stats.ratio_mean) == (0.0, 0.0, pytest.approx(1.0))


def test_dr_grpo_uses_the_given_generation_budget():
    _, grad, _ = _on_policy_grad("dr_grpo", max_tokens=10)
    assert grad[0, 0].item() == pytest.approx(-0.5 / (2 * 10))


def test_clipping_stops_the_gradient_only_where_it_binds():
    # ratio 1.5 on every token; eps 0.2 clips positive advantages at 1.2
    logp = torch.full((2, 3), math.log(1.5) - 1.0, requires_grad=True)
    old = torch.full((2, 3), -1.0)
    loss, stats = grpo_loss(logp, old, ADV, MASK, "grpo", eps=0.2)
    loss.backward()
    # row 0 (A > 0): clipped, no gradient; row 1 (A < 0): min picks 1.5 * A, gradient -A * rho / (3 * 2)
    assert torch.allclose(logp.grad[0], torch.zeros(3))
    assert torch.allclose(logp.grad[1], torch.full((3,), 0.5 * 1.5 / 6))
    assert loss.item() == pytest.approx(-(1.2 * 0.5 + 1.5 * -0.5) / 2)
    assert stats.clip_fraction == pytest.approx(2 / 5)
    assert stats.ratio_mean == pytest.approx(1.5)


def test_dapo_clip_higher_lets_positive_advantages_rise_further():
    logp = torch.full((2, 3), math.log(1.25) - 1.0)
    old = torch.full((2, 3), -1.0)
    _, grpo_stats = grpo_loss(logp, old, ADV, MASK, "grpo", eps=0.2)
    _, dapo_stats = grpo_loss(logp, old, ADV, MASK, "dapo", eps=0.2, eps_high=0.28)
    assert grpo_stats.clip_fraction == pytest.approx(2 / 5)  # 1.25 > 1.2: row 0 clipped
    assert dapo_stats.clip_fraction == 0.0  # 1.25 < 1.28: not clipped


def test_kl_penalty_value_and_gradient():
    # reference twice as likely as the policy on every token: delta = log 2, k3 = 2 - log 2 - 1
    logp = torch.full((2, 3), -1.0, requires_grad=True)
    ref = torch.full((2, 3), -1.0 + math.log(2.0))
    zero_adv = torch.zeros(2)
    loss, stats = grpo_loss(logp, logp.detach(), zero_adv, MASK, "dapo", beta=0.1, ref_logp=ref)
    loss.backward()
    k3 = 2 - math.log(2) - 1
    assert stats.kl == pytest.approx(k3)
    assert loss.item() == pytest.approx(0.1 * k3)
    # d/dlogp of beta * (e^(ref - logp) - (ref - logp) - 1) = beta * (1 - e^delta) = -0.1, over 5 tokens
    assert torch.allclose(logp.grad, MASK * (-0.1 / 5))


def test_a_step_on_the_loss_raises_the_probability_of_rewarded_answers():
    logits = torch.zeros(2, requires_grad=True)  # a one-token policy over two answers
    taken = torch.tensor([0, 0, 1, 1])  # a group of 4 samples; answer 0 is the rewarded one
    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0])
    opt = torch.optim.SGD([logits], lr=1.0)
    p = [0.5]
    for _ in range(5):
        logp = torch.log_softmax(logits, -1)[taken][:, None]  # (4, 1)
        loss, _ = grpo_loss(logp, logp.detach(), group_advantages(rewards, 4, "grpo"), torch.ones(4, 1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        p.append(torch.softmax(logits, -1)[0].item())
    assert all(b > a for a, b in itertools.pairwise(p)) and p[-1] > 0.9
