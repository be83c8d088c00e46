"""Stages fanned out on Ray (`scale.ray`): the same ledger rows as in one process, on a local Ray
(with a worker SIGKILLed mid-stage) and on a simulated two-node cluster; a cluster that is not
there is refused before anything is written."""

import io
import os
import sys
import time

import pytest
import ray
from families import TINY, TOK
from rich.console import Console

from rsi import resolve
from rsi.config import EngineConfig
from rsi.crashpoints import KILL_ENV, ONCE_ENV
from rsi.engine.checkpoint import save_checkpoint
from rsi.engine.model import build_tiny_model
from rsi.loop import start
from rsi.scale import ray_train
from rsi.scale.pool import LocalPool, SampleJob
from rsi.scale.ray_pool import RayPool, ScaleError, _ray, _RaySession
from rsi.tasks import get_task, problems
from rsi.views.fingerprint import fingerprint

pytestmark = pytest.mark.xdist_group("ray")  # one local Ray at a time on a machine
# one short cycle: the Ray runs are compared with in-process ones, not with how far they get
SMALL = ["loop.cycles=1", "eval.problems_per_difficulty=20", "propose.problems_per_difficulty=20", "base.steps=150",
         "train.steps=20"]
RSI = [sys.executable, "-m", "rsi.cli"]


def _quiet() -> Console:
    return Console(file=io.StringIO())


def test_a_run_on_two_ray_workers_writes_the_in_process_runs_rows(tmp_path, monkeypatch):
    start(resolve.load("quick", SMALL), tmp_path / "here", _quiet())
    sent, run = [], _RaySession.run
    monkeypatch.setattr(_RaySession, "run", lambda self, jobs, **k: sent.extend(jobs) or run(self, jobs, **k))
    # the first worker to take a sampling job SIGKILLs itself (Ray restarts it and the job is done again): on
    # that event, not on a clock; Ray's workers inherit this environment from the Ray this process starts
    killed = tmp_path / "killed"
    monkeypatch.setenv(KILL_ENV, "ray/worker/run")
    monkeypatch.setenv(ONCE_ENV, str(killed))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        start(resolve.load("quick", [*SMALL, "scale.ray.address=local", "scale.workers=2"]), tmp_path / "ray",
              _quiet())
        with pytest.raises(ScaleError, match=r"'scale.workers': 64 workers need 64 CPUs.*has 2"):
            start(resolve.load("quick", ["scale.ray.address=local", "scale.workers=64"]), tmp_path / "big", _quiet())
        assert not (tmp_path / "big").exists()  # refused before anything was written
    finally:
        ray.shutdown()
    assert killed.exists(), "no Ray worker was killed sampling"
    here, there = fingerprint(tmp_path / "here"), fingerprint(tmp_path / "ray")
    assert here["samples"]["rows"] > 0 and here["eval_answers"]["rows"] > 0
    assert here == there
    asked = sum(len(j.prompts) * j.n for j in sent)  # every sample and held-out answer came from a Ray worker
    assert asked >= here["samples"]["rows"] + here["eval_answers"]["rows"]


def test_the_pool_shares_jobs_and_verification_across_two_nodes_in_order(tmp_path):
    from ray.cluster_utils import Cluster

    save_checkpoint(build_tiny_model(TINY, TOK, 2), TOK, tmp_path / "m")
    sort = get_task("sort")
    jobs = [SampleJob([p.prompt for p in problems(sort, d, "train", 6)], 6, n=2, temperature=1.0, seed=d)
            for d in (1, 2, 3, 4)]
    with LocalPool().session(tmp_path / "m", EngineConfig(device="cpu")) as s:
        want = s.run(jobs)
    pairs = [(p, p.answer if p.seed % 2 else "nope") for p in problems(sort, 3, "train", 40)]
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        pool = RayPool(resolve.load("quick", ["scale.ray.address=auto", "scale.workers=2"]))
        with pool.session(tmp_path / "m", EngineConfig(device="cpu")) as s:
            rows = []
            got = s.run(jobs, on_rows=rows.append)
        verdicts = pool.verify(None, pairs)
        nodes = set(ray.get([a.node.remote() for a in pool.actors]))
        pool.close()
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert [[c.token_ids for c in cs] for a in got for cs in a] == [[c.token_ids for c in cs] for a in want for cs in a]
    assert rows == [12] * 4 and len(nodes) == 2
    assert [v.correct for v in verdicts] == [bool(p.seed % 2) for p, _ in pairs]


def _sft_case():
    """(draw, config, starting model) of a short SFT of a small model on the quick config's seed data."""
    from rsi.config import ModelConfig, TrainConfig
    from rsi.learn.data import mixture, seed_stream

    cfg = resolve.load("quick")
    draw = mixture({}, seed_stream(get_task(cfg.task), cfg.seed_data, cfg.propose), None)
    model = build_tiny_model(ModelConfig(hidden_size=32, layers=2, heads=2, intermediate_size=64), TOK, 0)
    return draw, TrainConfig(steps=12, batch_size=32, lr=1e-3, warmup_steps=4), model


def _rank(rank: int, world: int, out: str, port: int) -> None:
    """One rank of a gloo process group training its share (`rsi.learn.shard`); rank 0 saves the result."""
    import torch
    import torch.distributed as dist

    from rsi.learn.sft import train
    from rsi.learn.shard import Shard

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    draw, tcfg, model = _sft_case()
    stats = train(model, TOK, draw, tcfg, seed=3, shard=Shard.of_group())
    if rank == 0:
        torch.save({"stats": stats, "state": model.state_dict()}, out)
    dist.destroy_process_group()


def _trained_like(model, alone, start_from) -> bool:
    """It moved from where it started, and ended where one process did to within a fifth of that."""
    moved, off = (max(float((p - q).detach().abs().max())
                      for p, q in zip(model.parameters(), other.parameters(), strict=True))
                  for other in (start_from, alone))
    return off < moved / 5


def test_ranks_that_share_each_batch_train_like_one_process(tmp_path):
    """`scale.strategy: ddp`'s arithmetic, on 2 gloo ranks: the same counts, the final loss within
    0.5 % of one process's (each shard averages its own tokens), gradients averaged."""
    import copy

    import torch
    import torch.multiprocessing as mp

    from rsi.learn.sft import train

    draw, tcfg, start_from = _sft_case()
    alone = copy.deepcopy(start_from)
    want = train(alone, TOK, draw, tcfg, seed=3)
    mp.spawn(_rank, args=(2, str(tmp_path / "r0.pt"), 29000 + os.getpid() % 1000), nprocs=2)
    got = torch.load(tmp_path / "r0.pt", weights_only=False)
    model = copy.deepcopy(start_from)
    model.load_state_dict(got["state"])
    s = got["stats"]
    assert (s.steps, s.sequences, s.tokens) == (want.steps, want.sequences, want.tokens)
    assert s.final_loss == pytest.approx(want.final_loss, rel=5e-3) and s.final_loss != want.final_loss
    assert _trained_like(model, alone, start_from)


def test_sharded_sft_on_ray_train_matches_one_process(tmp_path, monkeypatch):
    """`scale.strategy: fsdp` through the pool: 2 Ray Train workers (gloo), the model sharded by
    FSDP2, the state back in the driver; the pool's workers are back for the next stage."""
    import copy

    from rsi.learn.sft import train

    draw, tcfg, start_from = _sft_case()
    alone = copy.deepcopy(start_from)
    want = train(alone, TOK, draw, tcfg, seed=3)
    save_checkpoint(start_from, TOK, tmp_path / "m")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        pool = RayPool(resolve.load("quick", ["scale.ray.address=local", "scale.workers=2", "scale.strategy=fsdp"]))
        model = copy.deepcopy(start_from)
        got = pool.train(model, TOK, draw, tcfg, 3, tmp_path / "scratch")
        with pool.session(tmp_path / "m", EngineConfig(device="cpu")) as s:
            assert len(s.run([SampleJob(["s:12="], 4)])[0]) == 1
        pool.close()
        held = ray.util.placement_group([{"CPU": 1}])  # something else holds one of the 2 CPUs
        ray.get(held.ready())
        monkeypatch.setattr(ray_train, "START_S", 1.0)
        t0 = time.monotonic()
        with pytest.raises(ScaleError, match=r"'scale.workers': 2 data-parallel training workers need 2 CPU, and the "
                                             r"Ray cluster did not have them free within 1 s \(the cluster has CPU 2 "
                                             r"in all, 1 free"):
            pool.train(copy.deepcopy(start_from), TOK, draw, tcfg, 3, tmp_path / "scratch")
        assert time.monotonic() - t0 < 30  # bounded (Ray Train itself waited, and retried, without end)
    finally:
        ray.shutdown()
    assert (got.steps, got.sequences, got.tokens) == (want.steps, want.sequences, want.tokens)
    assert got.final_loss == pytest.approx(want.final_loss, rel=5e-3)
    assert _trained_like(model, alone, start_from)
    assert not list((tmp_path / "scratch").iterdir())  # the trainer's files are gone


def test_a_cluster_that_does_not_answer_is_refused_before_the_run_directory_exists(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ScaleError, match=r"'scale.ray.address': nothing answers at '127.0.0.1:9'.*ray start --head"):
        start(resolve.load("quick", ["scale.ray.address=127.0.0.1:9"]), run, _quiet())
    assert not run.exists() and not ray.is_initialized()


def test_ray_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ScaleError, match=r"scale.ray.address.*pip install 'rsi\[ray\]'"):
        _ray()


def test_an_address_that_is_not_one_is_refused():
    with pytest.raises(ScaleError, match="is not an address"):
        RayPool(resolve.load("quick", ["scale.ray.address=nowhere"]))

