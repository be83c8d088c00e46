"""GRPO's packed training forward gives the log-probabilities and gradients of running each row alone."""

import pytest
import torch
from families import SIZES, TINY, TOK, family_models
from transformers import Qwen2Config, Qwen2ForCausalLM

from rsi.engine import forward, packed
from rsi.engine.lean import fused_layers
from rsi.engine.model import build_tiny_model
from rsi.engine.packed import packed_logprobs

PROMPTS = torch.tensor([[0, 1, 5, 6, 7], [1, 8, 9, 4, 5]])  # the first left-padded by one token
ATTN = torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]])


def row_alone(model, prompt: torch.Tensor, completion: list[int]) -> torch.Tensor:
    """log p(completion[t] | prompt, completion[:t]) from the model's own forward, one row, no padding."""
    ids = torch.cat([prompt, torch.tensor(completion, dtype=torch.long)])[None]
    logits = model(input_ids=ids).logits[0, len(prompt) - 1: -1]  # (C, V) predicting the completion
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion)[:, None]).squeeze(-1)


@pytest.mark.parametrize("name, model", family_models(3))
@pytest.mark.parametrize("rows, lens", [([0, 0, 1, 1, 1], [4, 1, 3, 4, 2]),  # uneven groups and lengths
                                        ([0, 0, 0, 1, 1, 1], [3, 3, 3, 3, 3, 3])])  # GRPO's equal groups, no padding
def test_packed_logprobs_match_each_row_alone_in_values_and_gradients(name, model, rows, lens, monkeypatch):
    monkeypatch.setattr(packed, "LOGIT_CHUNK_ELEMENTS", 3 * len(TOK))  # several chunks: the checkpointed path
    torch.manual_seed(0)
    model.zero_grad()  # the model is shared across parametrisations
    completions = [torch.randint(3, len(TOK), (n,)).tolist() for n in lens]
    logp, mask = packed_logprobs(model, fused_layers(model), PROMPTS, ATTN, torch.tensor(rows), completions)
    weights = torch.rand(logp.shape)  # a loss that weighs every token differently
    (logp * weights).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    total = 0
    for b, (r, comp) in enumerate(zip(rows, completions, strict=True)):
        want = row_alone(model, PROMPTS[r][ATTN[r].bool()], comp)
        torch.testing.assert_close(logp[b, : len(comp)], want, atol=1e-5, rtol=1e-5)
        assert mask[b].tolist() == [1.0] * len(comp) + [0.0] * (logp.shape[1] - len(comp))
        assert logp[b, len(comp):].eq(0).all()  # padding carries nothing
        total = total + (want * weights[b, : len(comp)]).sum()
    total.backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, atol=1e-4, rtol=1e-4, msg=lambda m, n=n: f"{n}: {m}")


def test_single_token_completions_need_no_completion_forward():
    model = build_tiny_model(TINY, TOK, 0)
    completions = [[5], [TOK.eos_token_id]]
    logp, mask = packed_logprobs(model, fused_layers(model), PROMPTS, ATTN, torch.tensor([0, 1]), completions)
    with torch.no_grad():
        for b in range(2):
            want = row_alone(model, PROMPTS[b][ATTN[b].bool()], completions[b])
            torch.testing.assert_close(logp[b], want, atol=1e-5, rtol=1e-5)
    assert mask.tolist() == [[1.0], [1.0]]


@pytest.mark.parametrize("targets", ["all-linear", ["q_proj", "v_proj", "down_proj"]])
def test_lora_adapters_train_through_the_packed_forward_as_through_peft(targets):
    from rsi.config import LoraConfig
    from rsi.engine.backend import with_lora

    torch.manual_seed(4)
    model = with_lora(Qwen2ForCausalLM(Qwen2Config(**SIZES)), LoraConfig(r=2, alpha=6, target_modules=targets))
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.3)  # a non-zero adapter
    assert forward.training(model) == "packed"
    prompts = [[1, 5, 6, 7], [1, 5, 6, 7], [1, 8, 9, 4, 5]]
    completions = [[3, 4, 5], [6], [7, 8]]
    logp, _ = forward.logprobs(model, prompts, completions, TOK.pad_token_id)
    logp.sum().backward()
    adapters = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert adapters and all("lora_" in n for n in adapters)
    got = {n: p.grad.clone() for n, p in adapters.items()}
    model.zero_grad()
    total = 0
    for b, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        want = row_alone(model, torch.tensor(p), c)  # peft's own forward
        torch.testing.assert_close(logp[b, : len(c)], want, atol=1e-5, rtol=1e-5)
        total = total + want.sum()
    total.backward()
    for n, p in adapters.items():
        torch.testing.assert_close(got[n], p.grad, atol=1e-4, rtol=1e-4, msg=lambda m, n=n: f"{n}: {m}")


def test_adapters_it_cannot_reproduce_fall_back_to_peft():
    from rsi.config import LoraConfig
    from rsi.engine.backend import with_lora

    model = with_lora(Qwen2ForCausalLM(Qwen2Config(**SIZES)), LoraConfig(r=2, dropout=0.1))
    assert forward.training(model) == "hf"  # LoRA dropout: the packed forward has none
