"""Where models run (`engine.device`, `engine.dtype`): chosen in `rsi.engine.device` only, refused
with the key's name when the machine lacks it, and every engine call follows the model's placement."""

import ast
import re
from pathlib import Path

import pytest
import torch
from families import TINY, TOK

import rsi
from rsi import resolve
from rsi.config import EngineConfig
from rsi.engine import device, forward
from rsi.engine.checkpoint import load_checkpoint, save_checkpoint
from rsi.engine.generate import generate
from rsi.engine.model import build_tiny_model
from rsi.errors import ConfigError

NO_GPU = not torch.cuda.is_available()


def test_auto_is_the_cpu_in_float32_on_a_machine_without_a_gpu():
    if not NO_GPU:
        pytest.skip("this machine has a GPU")
    assert device.choose(EngineConfig()) == device.Placement(torch.device("cpu"), torch.float32)
    assert device.choose(EngineConfig(dtype="bfloat16")).dtype == torch.bfloat16


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_a_gpu_request_without_a_gpu_is_refused_before_any_work_naming_the_key(tmp_path, name):
    with pytest.raises(device.DeviceError, match=r"config key 'engine.device': .*no CUDA GPU.*engine.device=cpu"):
        device.choose(EngineConfig(device=name))
    with pytest.raises(ConfigError, match=r"engine.device") as e:
        resolve.load("quick", [f"engine.device={name}"])
    assert "no CUDA GPU" in str(e.value)


def test_a_device_name_that_is_not_one_is_a_config_error_with_the_allowed_names():
    with pytest.raises(ConfigError, match=r"engine.device.*auto, cpu, cuda or cuda:N"):
        resolve.load("quick", ["engine.device=gpu0"])


def test_a_run_may_resume_on_another_device():
    stored = resolve.load("quick").model_dump(mode="json")
    assert resolve.resumed(stored, ["engine.device=cpu", "engine.dtype=float32"]).engine.device == "cpu"


def test_placing_in_bfloat16_keeps_float32_weights_and_leaves_the_cpu_fast_paths():
    model = build_tiny_model(TINY, TOK, 0)
    assert forward.sampling(model) == "lean" and forward.training(model) == "packed"
    device.place(model, device.Placement(torch.device("cpu"), torch.bfloat16))
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert device.compute_dtype(model) == torch.bfloat16
    assert (forward.sampling(model), forward.training(model), forward.taped(model)) == ("hf", "hf", False)


def test_bfloat16_compute_gives_the_float32_answers_to_bfloat16_tolerance():
    model = build_tiny_model(TINY, TOK, 3).eval()
    prompts = [[TOK.bos_token_id, 5, 6, 7], [TOK.bos_token_id, 8, 9]]
    answers = [[10, 11, 12], [13, 14]]
    want, mask = forward.logprobs(model, prompts, answers, TOK.pad_token_id)
    device.place(model, device.Placement(torch.device("cpu"), torch.bfloat16))
    got, got_mask = forward.logprobs(model, prompts, answers, TOK.pad_token_id)
    assert got.dtype == torch.float32 and torch.equal(mask, got_mask)
    assert not torch.equal(got, want)  # it did compute in bfloat16
    torch.testing.assert_close(got, want, atol=0.05, rtol=0.02)
    # a training step's gradient reaches the float32 weights through autocast
    loss = forward.answer_loss(model, prompts, answers, TOK.pad_token_id)
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    outs = generate(model, TOK, ["s:31=", "s:4="], 6, n=2, temperature=1.0, seed=1)
    assert [len(cs) for cs in outs] == [2, 2] and all(c.n_tokens >= 1 for cs in outs for c in cs)


def test_a_checkpoint_loads_where_the_engine_config_says(tmp_path):
    save_checkpoint(build_tiny_model(TINY, TOK, 0), TOK, tmp_path / "m")
    model, _ = load_checkpoint(tmp_path / "m", EngineConfig(device="cpu", dtype="bfloat16"))
    assert device.of(model).type == "cpu" and device.compute_dtype(model) == torch.bfloat16
    plain, _ = load_checkpoint(tmp_path / "m")
    assert device.compute_dtype(plain) == torch.float32 and forward.sampling(plain) == "lean"


# what places a tensor on a device or picks a precision; only `rsi/engine/` may
PLACING = re.compile(r"\bdevice=|\.cuda\(|\.to\(\s*['\"](cuda|cpu)|torch\.(bfloat16|float16|half)\b|autocast\(")


def test_nothing_outside_the_engine_places_a_tensor_or_picks_a_precision():
    root = Path(rsi.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] == "engine":
            continue
        source = path.read_text()
        strings = {(n.lineno, n.end_lineno) for n in ast.walk(ast.parse(source))
                   if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        for i, line in enumerate(source.splitlines(), 1):
            code = line.split("#")[0]
            if PLACING.search(code) and not any(a <= i <= b for a, b in strings):
                found.append(f"{path.relative_to(root)}:{i}: {line.strip()}")
    assert not found, "outside rsi/engine/: " + "; ".join(found)
