"""The lean sampler forward matches the Hugging Face forward it replaces, token for token."""

import pytest
import torch
from families import TINY, TOK, family_models

from rsi.config import LoraConfig
from rsi.engine import forward
from rsi.engine.backend import with_lora
from rsi.engine.generate import generate
from rsi.engine.lean import LeanDecoder
from rsi.engine.model import build_tiny_model


@pytest.mark.parametrize("name, model", [(n, m.eval()) for n, m in family_models(0)])
def test_lean_logits_match_hf_with_and_without_left_padding(name, model):
    ids = torch.randint(3, len(TOK), (3, 9))
    attn = torch.ones_like(ids)
    attn[0, :4], attn[1, :1] = 0, 0
    nxt = torch.randint(3, len(TOK), (3, 2))
    full, fattn = torch.cat([ids, nxt], 1), torch.cat([attn, torch.ones_like(nxt)], 1)
    for mask in (attn, None):
        kw = {} if mask is None else {"attention_mask": fattn, "position_ids": (fattn.cumsum(-1) - 1).clamp(min=0)}
        ref = model(input_ids=full, **kw).logits  # (B, T + 2, V)
        lean = LeanDecoder(model, 3, 16)
        got = [lean.prefill(ids, mask), lean.step(nxt[:, 0]), lean.step(nxt[:, 1])]
        for k, logits in enumerate(got):
            torch.testing.assert_close(logits, ref[:, 8 + k], atol=1e-5, rtol=1e-5)


def test_generate_uses_the_lean_path_and_gives_the_hf_tokens(monkeypatch):
    model = build_tiny_model(TINY, TOK, 1)
    prompts = ["s:31=", "s:4159=", "s:2=", "s:31="]
    lean = generate(model, TOK, prompts, 8, n=2)
    monkeypatch.setattr(forward, "sampling", lambda m: "hf")
    hf = generate(model, TOK, prompts, 8, n=2)
    assert [[c.token_ids for c in cs] for cs in lean] == [[c.token_ids for c in cs] for cs in hf]


def test_models_it_does_not_cover_fall_back():
    model = build_tiny_model(TINY, TOK, 0)
    assert forward.sampling(model) == "lean"
    assert forward.sampling(with_lora(model, LoraConfig(r=2))) == "hf"  # peft-wrapped: the HF forward


def test_lora_model_samples_through_a_merged_view_that_is_undone_after():
    model = build_tiny_model(TINY, TOK, 0)
    wrapped = with_lora(model, LoraConfig(r=2))
    for n, p in wrapped.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5)  # a non-zero adapter
    ids = torch.tensor([[TOK.bos_token_id, 5, 6, 7]])
    want = wrapped(input_ids=ids).logits
    before = {k: v.clone() for k, v in model.state_dict().items() if "lora" not in k}
    with forward.sampler(wrapped) as plain:
        assert forward.sampling(plain) == "lean"
        torch.testing.assert_close(LeanDecoder(plain, 1, 8).prefill(ids, None), want[:, -1], atol=1e-5, rtol=1e-5)
    after = {k: v for k, v in model.state_dict().items() if "lora" not in k}
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)
    torch.testing.assert_close(wrapped(input_ids=ids).logits, want, atol=1e-5, rtol=1e-5)
