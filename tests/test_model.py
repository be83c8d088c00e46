"""Tokenizer, tiny model, objectives, generation, training and checkpoints on a very small model."""

import math

import pytest
import torch

from rsi.config import GrpoConfig, ModelConfig, TrainConfig
from rsi.engine.checkpoint import load_checkpoint, save_checkpoint, verify_checkpoint
from rsi.engine.generate import generate, sample
from rsi.engine.model import build_tiny_model
from rsi.engine.tokenizer import build_char_tokenizer
from rsi.errors import CheckpointError
from rsi.learn.objectives import pretrain_batch, sft_batch
from rsi.learn.optim import lr_at
from rsi.learn.sft import train
from rsi.records import Example

TOK = build_char_tokenizer("0123456789+=")
SMALL = ModelConfig(hidden_size=32, layers=2, heads=2, intermediate_size=64)


def test_char_tokenizer_round_trip_and_specials():
    ids = TOK("12+3=", add_special_tokens=False)["input_ids"]
    assert len(ids) == 5 and TOK.decode(ids) == "12+3="
    assert {TOK.pad_token_id, TOK.bos_token_id, TOK.eos_token_id} == {0, 1, 2}


def test_objectives_mask_the_right_tokens():
    ex = [Example("12+3=", "51", 2, "seed"), Example("1+1=", "2", 1, "seed")]
    contexts, targets = sft_batch(TOK, ex)
    assert [len(c) + len(t) for c, t in zip(contexts, targets, strict=True)] == [9, 7]  # <bos> 12+3= 51 <eos>
    assert contexts[0] == [TOK.bos_token_id, *TOK("12+3=", add_special_tokens=False)["input_ids"]]
    assert targets[0] == TOK("51", add_special_tokens=False)["input_ids"] + [TOK.eos_token_id]
    contexts_p, targets_p = pretrain_batch(TOK, ex)
    assert contexts_p[1] == [TOK.bos_token_id] and len(targets_p[1]) == 5 + 1  # "1+1=2" then <eos>
    assert [c + t for c, t in zip(contexts_p, targets_p, strict=True)] == [c + t for c, t in zip(contexts, targets,
                                                                                                 strict=True)]


def test_the_answer_loss_is_the_models_own_cross_entropy_over_the_targets():
    """SFT's loss through the engine's packed forward equals the Hugging Face forward's cross-entropy
    over the labelled positions of a right-padded batch, value and gradients."""
    import torch.nn.functional as F

    from rsi.engine.forward import answer_loss, training

    model = build_tiny_model(SMALL, TOK, seed=0)
    assert training(model) == "packed"
    ex = [Example("12+3=", "51", 2, "seed"), Example("1+1=", "2", 1, "seed"), Example("9=", "9", 1, "seed")]
    contexts, targets = sft_batch(TOK, ex)
    loss = answer_loss(model, contexts, targets, TOK.pad_token_id)
    loss.backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    T = max(len(c) + len(t) for c, t in zip(contexts, targets, strict=True))
    ids = torch.full((3, T), TOK.pad_token_id)
    labels = torch.full((3, T), -100)
    for b, (c, t) in enumerate(zip(contexts, targets, strict=True)):
        ids[b, : len(c) + len(t)] = torch.tensor(c + t)
        labels[b, len(c) - 1: len(c) + len(t) - 1] = torch.tensor(t)
    want = F.cross_entropy(model(input_ids=ids).logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    want.backward()
    torch.testing.assert_close(loss, want, atol=1e-5, rtol=1e-5)
    for n, p in model.named_parameters():
        torch.testing.assert_close(got[n], p.grad, atol=1e-5, rtol=1e-4, msg=lambda m, n=n: f"{n}: {m}")


def test_tiny_model_is_nope():
    model = build_tiny_model(SMALL, TOK, seed=0).eval()
    assert model.config.no_rope_layers == [0, 0]
    # No positional encoding: the first token after <bos> sees the same context whatever comes later,
    # and shifting positions (position_ids) changes nothing.
    x = torch.tensor([[1, 5, 6, 7]])
    a = model(input_ids=x).logits
    b = model(input_ids=x, position_ids=torch.tensor([[10, 11, 12, 13]])).logits
    assert torch.allclose(a, b, atol=1e-6)
    again = build_tiny_model(SMALL, TOK, seed=0)
    assert torch.equal(model.model.embed_tokens.weight, again.model.embed_tokens.weight)


def test_training_learns_a_fixed_mapping_and_generation_reproduces_it():
    model = build_tiny_model(SMALL, TOK, seed=0)
    data = [Example("1+1=", "2", 1, "seed"), Example("2+2=", "4", 1, "seed"), Example("3+4=", "7", 1, "seed")]
    cfg = TrainConfig(
        objective="sft", steps=150, batch_size=12, lr=3e-3, warmup_steps=10, weight_decay=0.0, grad_clip=1.0
    )
    stats = train(model, TOK, lambda rng, b: [rng.choice(data) for _ in range(b)], cfg, seed=0)
    assert stats.sequences == 150 * 12 and stats.final_loss < 0.1
    outs = generate(model, TOK, ["1+1=", "2+2=", "3+4="], max_new_tokens=3)
    assert [o[0].text for o in outs] == ["2", "4", "7"]
    assert all(o[0].finished and o[0].n_tokens == 2 for o in outs)


def test_sampling_is_seeded_and_gives_n_per_prompt():
    model = build_tiny_model(SMALL, TOK, seed=1)
    a = generate(model, TOK, ["1+2=", "12+34="], 4, n=3, temperature=1.0, seed=5)
    b = generate(model, TOK, ["1+2=", "12+34="], 4, n=3, temperature=1.0, seed=5)
    assert [[c.text for c in row] for row in a] == [[c.text for c in row] for row in b]
    assert all(len(row) == 3 for row in a)
    assert all(c.n_tokens <= 4 for row in a for c in row)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sampler_draws_from_the_softmax_and_never_a_zero_probability_token(temperature):
    logits = torch.tensor([[2.0, 0.0, float("-inf"), 1.0, -1.0]]).repeat(40_000, 1)
    gen = torch.Generator().manual_seed(0)
    draws = sample(logits, temperature, gen)
    freq = torch.bincount(draws, minlength=5).float() / len(draws)
    want = torch.softmax(logits[0] / temperature, -1)
    assert freq[2] == 0  # probability 0
    assert (freq - want).abs().max() < 0.01, (freq, want)  # 4 sigma at p = 0.5, n = 40k


def test_lr_schedule_warms_up_then_decays_to_a_tenth():
    cfg = TrainConfig(objective="sft", steps=100, batch_size=1, lr=1.0, warmup_steps=10, weight_decay=0, grad_clip=1)
    assert lr_at(5, cfg, 100) == pytest.approx(0.5 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.05))))
    assert lr_at(100, cfg, 100) == pytest.approx(0.1)
    flat = GrpoConfig(lr=1.0, warmup_steps=10)  # GRPO's default schedule: warm-up, then constant
    assert (lr_at(5, flat, 100), lr_at(10, flat, 100), lr_at(100, flat, 100)) == (0.5, 1.0, 1.0)


def test_checkpoint_round_trip_and_corruption_is_detected(tmp_path):
    model = build_tiny_model(SMALL, TOK, seed=0)
    path = save_checkpoint(model, TOK, tmp_path / "cycle-0001", {"cycle": 1})
    manifest = verify_checkpoint(path)
    assert "model.safetensors" in manifest["files"] and manifest["meta"] == {"cycle": 1}
    loaded, _tok = load_checkpoint(path)
    x = torch.tensor([[1, 5, 6]])
    assert torch.allclose(loaded(input_ids=x).logits, model.eval()(input_ids=x).logits, atol=1e-6)
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        load_checkpoint(path)
    (path / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="has no manifest.json"):
        load_checkpoint(path)
    assert not (tmp_path / "cycle-0001.tmp").exists()
