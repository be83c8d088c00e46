"""`engine.generation: vllm` against a fake `vllm` module that checks vLLM's documented offline
contract (`tests/fake_vllm`); no machine here can run the real one."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from families import TINY, TOK

from rsi import resolve
from rsi.config import EngineConfig
from rsi.engine.checkpoint import save_checkpoint
from rsi.engine.generate import stop_ids
from rsi.engine.model import build_tiny_model
from rsi.engine.samplers import open_sampler
from rsi.errors import ConfigError

FAKE = Path(__file__).parent / "fake_vllm"
VLLM = EngineConfig(device="cpu", generation="vllm")


@pytest.fixture
def fake_vllm(monkeypatch):
    monkeypatch.syspath_prepend(str(FAKE))
    sys.modules.pop("vllm", None)
    import vllm

    vllm.CALLS.clear()
    yield vllm
    sys.modules.pop("vllm", None)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("vllm") / "m"
    save_checkpoint(build_tiny_model(TINY, TOK, 4), TOK, path)
    return path


PROMPTS = ["s:31=", "s:4159=", "s:2=", "s:31="]  # a repeat: its own seed


def test_greedy_answers_are_the_torch_engines(fake_vllm, checkpoint):
    with open_sampler(checkpoint, EngineConfig(device="cpu")) as torch_sampler:
        want = torch_sampler.sample(PROMPTS, 8, n=2)
    with open_sampler(checkpoint, VLLM) as sampler:
        got = sampler.sample(PROMPTS, 8, n=2)
    assert [[(c.text, c.token_ids, c.finished) for c in cs] for cs in got] == \
        [[(c.text, c.token_ids, c.finished) for c in cs] for cs in want]
    llm, call = fake_vllm.CALLS[0], fake_vllm.CALLS[1]
    assert llm["skip_tokenizer_init"] and llm["model"] == str(checkpoint) and llm["dtype"] == "float32"
    assert call["n"] == [1] * 4 and call["max_tokens"] == 8  # greedy is asked once per prompt
    assert call["stops"] == sorted(stop_ids(build_tiny_model(TINY, TOK, 0), TOK))


def test_sampled_answers_depend_on_the_prompt_and_seed_not_on_the_batching(fake_vllm, checkpoint):
    with open_sampler(checkpoint, VLLM) as sampler:
        whole = sampler.sample(PROMPTS, 8, n=3, temperature=1.0, seed=7)
        alone = [sampler.sample([p], 8, n=3, temperature=1.0, seed=7)[0] for p in PROMPTS[:3]]
        other = sampler.sample(PROMPTS, 8, n=3, temperature=1.0, seed=8)
    assert [len(cs) for cs in whole] == [3] * 4
    assert [[c.token_ids for c in cs] for cs in whole[:3]] == [[c.token_ids for c in cs] for cs in alone]
    seeds = fake_vllm.CALLS[1]["seeds"]
    assert len(set(seeds)) == 4  # the repeated prompt has a seed of its own
    assert [[c.token_ids for c in cs] for cs in whole] != [[c.token_ids for c in cs] for cs in other]
    for c in (c for cs in whole for c in cs):
        assert c.n_tokens == len(c.token_ids) and c.finished == (c.token_ids[-1] in fake_vllm.CALLS[1]["stops"])


def test_a_stop_token_left_out_of_the_ids_is_put_back_and_the_engine_is_shut_down(fake_vllm, checkpoint,
                                                                                   monkeypatch):
    with open_sampler(checkpoint, VLLM) as sampler:
        keep = sampler.sample(PROMPTS, 8, n=1)
        monkeypatch.setattr(fake_vllm, "KEEP_STOP_TOKEN", False)
        drop = sampler.sample(PROMPTS, 8, n=1)
        engine = fake_vllm.ENGINES[-1]  # a weak reference: the test does not keep the engine alive
        made = id(engine())
        running = not engine().shut_down  # (not inside an assert: pytest keeps an assert's values alive)
        assert running
    assert [c.token_ids for cs in drop for c in cs] == [c.token_ids for cs in keep for c in cs]
    # after the block: the engine was shut down (what gives vLLM's workers and GPU memory back) and nothing holds it
    assert {"call": "shutdown", "engine": made} in fake_vllm.CALLS
    assert sampler.llm is None and engine() is None


def test_generation_vllm_without_vllm_names_the_key_and_the_extra():
    if any((Path(p) / "vllm").exists() for p in sys.path if p):
        pytest.skip("a vllm package is importable here")
    with pytest.raises(ConfigError, match=r"engine.generation.*pip install 'rsi\[vllm\]'"):
        resolve.load("quick", ["engine.generation=vllm"])


def test_a_run_generates_and_evaluates_through_vllm(tmp_path, checkpoint):
    log = tmp_path / "calls.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FAKE), os.environ.get("PYTHONPATH", "")]),
           "RSI_FAKE_VLLM_LOG": str(log)}
    run = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "rsi.cli", "run", "quick", "--run-dir", str(run),
                    "--set", "engine.generation=vllm", "--set", "loop.cycles=1", "--set", "base.steps=150",
                    "--set", "train.steps=20",
                    "--set", "eval.problems_per_difficulty=10", "--set", "propose.problems_per_difficulty=20"],
                   check=True, capture_output=True, env=env, timeout=600)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    engines = [c for c in calls if c["call"] == "LLM"]
    # evaluate cycle 0 (base), generate cycle 1 (the champion), evaluate cycle 1 (the candidate, maybe the champion)
    assert {Path(c["model"]).name for c in engines} >= {"cycle-0000", "cycle-0001"} and len(engines) >= 3
    con = sqlite3.connect(run / "ledger.sqlite")
    samples = con.execute("SELECT count(*) FROM samples WHERE cycle = 1").fetchone()[0]
    proposed = con.execute("SELECT count(*) FROM problems WHERE cycle = 1").fetchone()[0]
    asked = sum(sum(c["n"]) for c in calls if c["call"] == "generate" and max(c["n"]) > 1)
    # up to 20 problems at 3 difficulties (less those overlapping a held-out one), 4 samples each, all from vLLM
    assert 0 < proposed <= 20 * 3 and samples == proposed * 4 == asked
    assert con.execute("SELECT count(*) FROM evals WHERE cycle = 1").fetchone()[0] > 0
