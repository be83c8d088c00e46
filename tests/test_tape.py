"""rsi.engine.tape: an update back-propagated through the sampler's recorded forward equals one through
the model's own forward, in log-probabilities, gradients and the GRPO step it takes."""

import pytest
import torch
from families import MAKERS, TOK

from rsi.config import GrpoConfig, ModelConfig
from rsi.engine import tape
from rsi.engine.generate import generate
from rsi.engine.model import build_tiny_model
from rsi.engine.tape import Recorder, tape_logprobs, traced_logprobs
from rsi.engine.tokenizer import build_char_tokenizer, encode_prompt
from rsi.learn.grpo import grpo_train
from rsi.learn.rewards import Reward
from rsi.tasks import get_task, problem


def row_alone(model, prompt: list[int], completion: list[int]) -> torch.Tensor:
    ids = torch.tensor([prompt + completion])
    logits = model(input_ids=ids).logits[0, len(prompt) - 1: -1]
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion)[:, None]).squeeze(-1)


@pytest.mark.parametrize("name, make", list(MAKERS.items()))
@pytest.mark.parametrize("compact", [False, True])  # filler rows kept (views) or dropped first
def test_taped_logprobs_and_gradients_equal_the_models_own(name, make, compact, monkeypatch):
    monkeypatch.setattr(tape, "COMPACT_BELOW", 1.01 if compact else 0.0)
    torch.manual_seed(0)
    model = make()
    prompts = ["s:31=", "s:4159=", "s:2="]  # different lengths: one left-padded batch
    recorder = Recorder()
    outs = generate(model, TOK, prompts, 6, n=2, temperature=1.0, seed=3, recorder=recorder)
    traces = recorder.traces
    flat = [list(c.token_ids) for cs in outs for c in cs]
    assert len({len(c) for c in flat}) > 1  # some rows finished early
    (rows, trace), = traces
    logp, mask = tape_logprobs(model, trace, [flat[r] for r in rows])
    weights = torch.rand(logp.shape)
    (logp * weights).sum().backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    total = 0
    for b, r in enumerate(rows):
        want = row_alone(model, encode_prompt(TOK, prompts[r // 2]), flat[r])
        torch.testing.assert_close(logp[b, : len(flat[r])], want, atol=1e-5, rtol=1e-5)
        assert mask[b].sum() == len(flat[r])
        total = total + (want * weights[b, : len(flat[r])]).sum()
    total.backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(got[n], p.grad, atol=1e-4, rtol=1e-4, msg=lambda m, n=n: f"{n}: {m}")


@pytest.mark.parametrize("variant", ["grpo", "dapo"])  # dapo trains on a subset of the rows
def test_a_grpo_step_through_the_recorded_forward_moves_the_weights_as_a_second_forward_does(variant, monkeypatch):
    sort = get_task("sort")
    tok = build_char_tokenizer(sort.alphabet)
    probs = [problem(sort, 3, "train", i) for i in range(8)]
    by_first = Reward("first", 1.0, lambda completions, **_: [float(c[:1] in "0123") for c in completions], False)
    cfg = GrpoConfig(steps=2, variant=variant, prompts_per_step=4, group_size=4, lr=1e-2, inner_updates=2)
    results, calls, real = [], [], tape.traced_logprobs
    monkeypatch.setattr(tape, "traced_logprobs", lambda *a, **k: calls.append(1) or real(*a, **k))
    for on_tape in (True, False):
        model = build_tiny_model(ModelConfig(hidden_size=32, layers=2, heads=2, intermediate_size=64), tok, seed=1)
        calls.clear()
        monkeypatch.setattr("rsi.learn.grpo.taped", lambda m, on=on_tape: on)
        logs = grpo_train(model, tok, probs, [by_first], cfg, seed=0, budget=lambda p: 5)
        assert bool(calls) == on_tape and all(lg.loss is not None for lg in logs)
        results.append((logs, {n: p.detach().clone() for n, p in model.named_parameters()}))
    (logs_a, after_a), (logs_b, after_b) = results
    assert [lg.reward_mean for lg in logs_a] == [lg.reward_mean for lg in logs_b]  # the same samples
    for n in after_a:  # Adam turns float rounding in tiny gradients into ~1e-4 of an lr-1e-2 step at most
        torch.testing.assert_close(after_a[n], after_b[n], atol=3e-4, rtol=1e-3, msg=lambda m, n=n: f"{n}: {m}")
    moved = max(float((after_a[n] - p).abs().max()) for n, p in
                build_tiny_model(ModelConfig(hidden_size=32, layers=2, heads=2, intermediate_size=64), tok, seed=1)
                .named_parameters())
    assert moved > 1e-2  # the steps did move the weights, by far more than the tolerance


def test_a_trace_shorter_than_a_completion_is_refused():
    model = build_tiny_model(ModelConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64), TOK, 0)
    recorder = Recorder()
    generate(model, TOK, ["s:1="], 2, n=2, temperature=1.0, recorder=recorder)
    traces = recorder.traces
    (_, trace), = traces
    with pytest.raises(ValueError, match="traced steps"):
        tape_logprobs(model, trace, [[5, 6, 7, 8], [5]])
    assert traced_logprobs(model, traces, [[5], [6]], [1])[0].shape == (1, 1)


def test_several_decode_batches_and_a_trace_too_big_to_record(monkeypatch):
    model = build_tiny_model(ModelConfig(hidden_size=32, layers=2, heads=2, intermediate_size=64), TOK, 2)
    prompts = ["s:31=", "s:42=", "s:4159=", "s:8260="]
    recorder = Recorder()
    outs = generate(model, TOK, prompts, 4, n=4, temperature=1.0, seed=1, batch_size=8, recorder=recorder)
    traces = recorder.traces
    assert len(traces) == 2  # two prompt lengths, one batch each
    flat = [list(c.token_ids) for cs in outs for c in cs]
    rows = [13, 2, 7, 0, 15]  # any subset, any order
    logp, mask = traced_logprobs(model, traces, flat, rows)
    assert mask.sum(1).tolist() == [len(flat[r]) for r in rows]
    with torch.no_grad():
        for k, r in enumerate(rows):
            want = row_alone(model, encode_prompt(TOK, prompts[r // 4]), flat[r])
            torch.testing.assert_close(logp[k, : len(flat[r])], want, atol=1e-5, rtol=1e-5)
    pooled = [t for layer in traces[0][1].acts for t in layer]
    generate(model, TOK, prompts[:2], 4, n=4, temperature=1.0, seed=1, batch_size=8, recorder=recorder)
    again = [t for layer in recorder.traces[0][1].acts for t in layer]
    assert all(a.data_ptr() == b.data_ptr() for a, b in zip(pooled, again, strict=True))  # buffers reused
    monkeypatch.setattr(tape, "MAX_TRACE_BYTES", 1000)
    assert generate(model, TOK, prompts, 4, n=4, temperature=1.0, seed=1, batch_size=8, recorder=recorder) == outs
    assert recorder.traces == []  # nothing recorded, the samples are the same
