"""The GRPO loop on a tiny model: log-probabilities under padding, and rewards that rise."""

import json

import pytest
import torch

from rsi.config import GrpoConfig, ModelConfig
from rsi.engine.forward import logprobs
from rsi.engine.model import build_tiny_model
from rsi.engine.tokenizer import build_char_tokenizer, encode_prompt, text_encoder
from rsi.learn.grpo import grpo_train
from rsi.learn.rewards import Reward, load_reward
from rsi.records import GrpoStep
from rsi.tasks import get_task, problem

SORT = get_task("sort")
TOK = build_char_tokenizer(SORT.alphabet)
SMALL = ModelConfig(hidden_size=32, layers=2, heads=2, intermediate_size=64)


def test_logprobs_match_unpadded_rows():
    model = build_tiny_model(SMALL, TOK, seed=0).eval()
    prompts = [encode_prompt(TOK, problem(SORT, d, "train", 0).prompt) for d in (2, 4)]  # different lengths
    enc = text_encoder(TOK)
    answers = [[*enc("13"), TOK.eos_token_id], enc("1")]
    with torch.no_grad():
        logp, mask = logprobs(model, prompts, answers, TOK.pad_token_id)
        for b, (p, a) in enumerate(zip(prompts, answers, strict=True)):
            logits = model(input_ids=torch.tensor([p + a])).logits[0].float()  # (T, V)
            want = torch.log_softmax(logits[len(p) - 1: len(p) + len(a) - 1], -1).gather(-1, torch.tensor(a)[:, None])
            assert torch.allclose(logp[b, : len(a)], want.squeeze(-1), atol=1e-5)
            assert mask[b].tolist() == [1.0] * len(a) + [0.0] * (logp.shape[1] - len(a))


@pytest.mark.parametrize("variant", ["grpo", "dr_grpo", "dapo"])
def test_grpo_raises_a_rewarded_behaviour(variant):
    """Reward answers whose first character is '7'; a few steps make it far more frequent."""
    model = build_tiny_model(SMALL, TOK, seed=1)
    probs = [problem(SORT, 2, "train", i) for i in range(32)]
    sevens = Reward("sevens", 1.0, lambda completions, **_: [float(c[:1] == "7") for c in completions], False)
    cfg = GrpoConfig(steps=25, variant=variant, prompts_per_step=8, group_size=8, lr=3e-2, eps_high=0.28)
    logs = grpo_train(model, TOK, probs, [sevens], cfg, seed=0, budget=lambda p: 3)
    first, last = logs[0].rewards["sevens"].mean, sum(lg.rewards["sevens"].mean for lg in logs[-5:]) / 5
    assert last > max(0.5, 3 * first), (first, last)
    for key in ("reward_mean", "reward_std", "zero_variance_groups", "kl", "clip_fraction", "answer_tokens_mean"):
        assert key in logs[-1].metrics()


def test_kl_penalty_uses_the_reference_and_inner_updates_clip():
    model = build_tiny_model(SMALL, TOK, seed=1)
    ref = build_tiny_model(SMALL, TOK, seed=1).eval()
    probs = [problem(SORT, 2, "train", i) for i in range(8)]
    cfg = GrpoConfig(steps=4, prompts_per_step=4, group_size=4, lr=3e-2, beta=0.5, inner_updates=3)
    sevens = Reward("sevens", 1.0, lambda completions, **_: [float(c[:1] == "7") for c in completions], False)
    logs = grpo_train(model, TOK, probs, [sevens], cfg, seed=0, budget=lambda p: 3, ref_model=ref)
    trained = [lg for lg in logs if lg.loss is not None]
    assert trained and trained[-1].kl > 0  # the policy has moved away from the reference
    assert any(lg.clip_fraction > 0 for lg in trained)  # later inner updates are off-policy and clip


def test_accuracy_reward_on_the_sort_task_is_scored_by_its_verifier(monkeypatch):
    """The reward is the task's verdict on each sample: a verifier that accepts answers starting with an
    even digit (the untrained model's are random) gives the share of those among the samples it saw."""
    from rsi.records import Verdict

    seen: list[str] = []

    def verify(self, p, completion):
        seen.append(completion)
        ok = completion[:1] in "02468" and completion[:1] != ""
        return Verdict(float(ok), ok, "even" if ok else "odd")

    monkeypatch.setattr(type(SORT), "verify", verify)
    model = build_tiny_model(SMALL, TOK, seed=0)
    probs = [problem(SORT, 1, "train", i) for i in range(4)]
    cfg = GrpoConfig(steps=1, prompts_per_step=4, group_size=2)
    logs = grpo_train(model, TOK, probs, [load_reward("accuracy", 1.0)], cfg, seed=0,
                      budget=lambda p: SORT.max_answer_chars(p.difficulty) + 1)
    even = sum(c[:1] in "02468" and c[:1] != "" for c in seen)
    assert len(seen) == logs[0].samples == 8 and 0 < even < 8  # both verdicts occur: the mean is not a constant
    assert logs[0].rewards["accuracy"].mean == pytest.approx(even / 8)
    assert GrpoStep.read(json.loads(json.dumps(logs[0].metrics()))) == logs[0]  # the ledger's JSON reads back whole


def test_step_statistics_of_older_ledgers_read_back_with_what_they_have():
    old = {"step": 3, "reward_mean": 0.5, "reward/accuracy/mean": 0.5, "reward/accuracy/std": 0.1, "loss": 0.2,
           "verified_mean": 0.4, "well_formed_mean": 1.0, "unverified_reward_share": 0.0,
           "malformed_reward_share": 0.0}  # no member, errors, relative length, or rows
    s = GrpoStep.read(old)
    assert (s.member, s.rewards["accuracy"].errors, s.checks.answer_length_ratio, s.trained_rows) == (0, 0, None, None)
    assert GrpoStep.read({"step": 1, "reward_mean": 0.0}).checks is None
