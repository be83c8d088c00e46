"""Long stages resume mid-stage: the SFT and GRPO loops save their state every N steps, and a
rerun after a kill goes on from the last save to the same weights and figures as an
uninterrupted run (unit level here; end to end, a SIGKILL right after a save, below)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import torch

from rsi.config import GrpoConfig, ModelConfig, TrainConfig, load_config
from rsi.engine.model import build_tiny_model
from rsi.engine.tokenizer import build_char_tokenizer
from rsi.learn.data import mixture, seed_stream
from rsi.learn.grpo import grpo_train
from rsi.learn.resumable import Resumable
from rsi.learn.rewards import Reward
from rsi.learn.sft import train
from rsi.tasks import get_task, problem
from rsi.views.fingerprint import differences, fingerprint

SORT = get_task("sort")
TOK = build_char_tokenizer(SORT.alphabet)
SMALL = ModelConfig(hidden_size=32, layers=2, heads=2, intermediate_size=64)
RSI = [sys.executable, "-m", "rsi.cli"]


class Killed(Exception):
    pass


def killer(at_step: int, step_of=lambda *a: a[0]):
    def on_step(*args):
        if step_of(*args) == at_step:
            raise Killed

    return on_step


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sft_killed_after_a_save_resumes_to_the_uninterrupted_weights(tmp_path):
    cfg = TrainConfig(steps=30, batch_size=8, lr=3e-3, warmup_steps=5, checkpoint_every=10)
    draw = mixture({}, seed_stream(SORT, load_config("quick").seed_data), None)
    whole = build_tiny_model(SMALL, TOK, seed=0)
    stats = train(whole, TOK, draw, cfg, seed=3)
    state = Resumable(tmp_path / "sft.pt", cfg.checkpoint_every, "sft seed=3 steps=30")
    cut = build_tiny_model(SMALL, TOK, seed=0)
    with pytest.raises(Killed):
        train(cut, TOK, draw, cfg, seed=3, on_step=killer(25), resumable=state)
    assert torch.load(state.path, weights_only=True)["loop"]["step"] == 20
    again = build_tiny_model(SMALL, TOK, seed=0)  # a new process: the stage's starting weights
    seen = []
    resumed = train(again, TOK, draw, cfg, seed=3, on_step=lambda s, _: seen.append(s), resumable=state)
    assert seen == list(range(21, 31)) and resumed == stats
    assert_same(weights(again), weights(whole))
    other = Resumable(state.path, 10, "sft seed=4 steps=30")  # another call's state is not taken
    assert other.restore(build_tiny_model(SMALL, TOK, seed=0), torch.optim.AdamW(whole.parameters()),
                         __import__("random").Random(0)) is None


def test_grpo_killed_after_a_save_resumes_to_the_uninterrupted_weights_and_logs(tmp_path):
    probs = [problem(SORT, 2, "train", i) for i in range(16)]
    sevens = Reward("sevens", 1.0, lambda completions, **_: [float(c[:1] == "7") for c in completions], False)
    cfg = GrpoConfig(steps=6, prompts_per_step=4, group_size=4, lr=3e-2, checkpoint_every=2)
    whole = build_tiny_model(SMALL, TOK, seed=1)
    logs = grpo_train(whole, TOK, probs, [sevens], cfg, seed=0, budget=lambda p: 3)
    state = Resumable(tmp_path / "grpo.pt", 2, "grpo")
    with pytest.raises(Killed):
        grpo_train(build_tiny_model(SMALL, TOK, seed=1), TOK, probs, [sevens], cfg, seed=0, budget=lambda p: 3,
                   on_step=killer(5, lambda log: log.step), resumable=state)
    again = build_tiny_model(SMALL, TOK, seed=1)
    resumed = grpo_train(again, TOK, probs, [sevens], cfg, seed=0, budget=lambda p: 3, resumable=state)
    assert [lg.step for lg in resumed] == list(range(1, 7)) and resumed == logs
    assert_same(weights(again), weights(whole))


def test_a_run_killed_inside_train_resumes_mid_stage_to_the_uninterrupted_fingerprint(tmp_path):
    args = ["quick", "--set", "loop.cycles=1", "--set", "label.friends=1",
            "--set", "base.steps=60", "--set", "base.checkpoint_every=20",
            "--set", "train.steps=60", "--set", "train.checkpoint_every=20", "--set", "eval.problems_per_difficulty=10",
            "--set", "propose.problems_per_difficulty=20"]
    reference, run = tmp_path / "whole", tmp_path / "killed"
    subprocess.run([*RSI, "run", *args, "--run-dir", reference], check=True, capture_output=True)
    for at in ("0/base/cycle-0000/sft/saved-40", "1/train/friend1-0001/sft/saved-40"):
        out = subprocess.run([*RSI, "run" if at[0] == "0" else "resume", *(args if at[0] == "0" else []),
                              *(["--run-dir"] if at[0] == "0" else []), run],
                             env=os.environ | {"RSI_KILL_AT": at}, capture_output=True, text=True)
        assert out.returncode == -signal.SIGKILL, out.stderr[-2000:]
        name = at.split("/")[2]
        assert (run / "models" / f"{name}.partial" / "sft.pt").is_file()
    out = subprocess.run([*RSI, "resume", run], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    said = out.stdout + out.stderr  # the candidate, done before the kill, did no step again; its friend went on
    assert "cycle 1: train" not in said, said
    assert "cycle 1 friend 1: train 41/60" in said and "cycle 1 friend 1: train 6/60" not in said, said
    assert not list((run / "models").glob("*.partial"))
    assert differences(fingerprint(run), fingerprint(reference)) == []
