"""Data-parallel SFT on Ray Train (`scale.strategy: ddp | fsdp`, `scale.workers` workers).

`fit(model, tokenizer, draw, cfg, seed, ...)` runs `rsi.learn.sft.train` in each of Ray Train's
`TorchTrainer` workers (its process group: gloo on the CPU, NCCL on GPUs). Every worker starts
from the same weights and draws the same batches from the same seed; each trains on its share
of every batch (`rsi.learn.shard.Shard`):

- `ddp`: every worker holds the whole model and the gradients are averaged after each backward;
- `fsdp`: the decoder layers and the model are sharded with PyTorch's `fully_shard` (FSDP2), which
  gathers weights for each forward and reduce-scatters gradients; the engine door then runs the
  model's own forward (its sharded weights are not plain tensors: `rsi.engine.forward`).

Rank 0 returns the whole trained state through a Ray Train checkpoint (the trainer's files live
in a scratch directory under the run's `models/`, on storage every node sees, removed after), and
the driver loads it into `model`: workers write no checkpoint of the run and no ledger row. A
data-parallel stage does not save mid-stage state: killed, it trains again from its start.
Progress shows when the stage ends (Ray Train reports to the driver at the end of `fit`).

The worker group's start is bounded: the stage waits up to `START_S` for the cluster to have the
workers' CPUs (or GPUs) free, and gives Ray Train the same time to start them, once (Ray Train would
otherwise wait and retry without end); past it, `ScaleError` names `scale.workers` and what the
cluster has, in all and free.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from rsi.config import EngineConfig, TrainConfig
from rsi.learn.sft import TrainStats
from rsi.scale.ray_pool import ScaleError

STATE = "state.pt"
START_S = 120.0  # how long the workers may wait for their CPUs (GPUs) and their start
START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"


def _loop(config: dict) -> None:
    """One Ray Train worker: its share of every batch, then rank 0 hands the whole state back."""
    import ray.train
    import torch.distributed as dist

    from rsi.engine import device
    from rsi.learn.sft import train
    from rsi.learn.shard import Shard

    torch.set_num_threads(config["threads"])
    model = config["model"]
    device.place(model, device.choose(config["engine"]))
    fsdp = config["strategy"] == "fsdp"
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        for layer in base.model.layers:
            fully_shard(layer)
        fully_shard(model)
    stats = train(model, config["tokenizer"], config["draw"], config["cfg"], config["seed"],
                  shard=Shard.of_group(reduce_grads=not fsdp))
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    else:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    metrics = {"stats": asdict(stats), "world": dist.get_world_size()}
    if dist.get_rank() == 0:
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(state, Path(tmp) / STATE)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report(metrics)


def wait_for_resources(need: dict[str, float], workers: int, within_s: float | None = None) -> None:
    """Return once the cluster has `need` free (Ray's available resources); ScaleError after `within_s`
    (default `START_S`) naming scale.workers and what the cluster has."""
    import ray

    deadline = time.monotonic() + (START_S if within_s is None else within_s)
    while any(ray.available_resources().get(k, 0.0) < v for k, v in need.items()):
        if time.monotonic() > deadline:
            raise ScaleError(_short(need, workers, f"the Ray cluster did not have them free within "
                                                   f"{START_S if within_s is None else within_s:g} s"))
        time.sleep(0.5)


def _short(need: dict[str, float], workers: int, what: str) -> str:
    import ray

    total, free = ray.cluster_resources(), ray.available_resources()
    wants = ", ".join(f"{v:g} {k}" for k, v in need.items())
    has = ", ".join(f"{k} {total.get(k, 0):g} in all, {free.get(k, 0):g} free" for k in need)
    return (f"config key 'scale.workers': {workers} data-parallel training workers need {wants}, and {what} "
            f"(the cluster has {has}; something else holds the rest: another run, a search's trials, or actors "
            "that did not stop). Lower scale.workers, free the cluster (`ray status` shows what holds it), or add "
            "nodes.")


def fit(model: torch.nn.Module, tokenizer, draw, cfg: TrainConfig, seed: int, *, workers: int, strategy: str,
        engine: EngineConfig, gpus: bool, scratch: Path,
        on_step: Callable[[int, float], None] | None = None) -> TrainStats:
    """Train `model` in place data-parallel on `workers` Ray Train workers; see the module docstring."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    scratch.mkdir(parents=True, exist_ok=True)
    storage = Path(tempfile.mkdtemp(prefix=".ray-train-", dir=scratch))
    try:
        scaling = ScalingConfig(num_workers=workers, use_gpu=gpus)
        wait_for_resources(scaling.total_resources, workers)
        os.environ.setdefault(START_TIMEOUT_ENV, str(START_S))  # Ray Train hands it on to its controller
        trainer = TorchTrainer(
            _loop,
            train_loop_config={"model": model, "tokenizer": tokenizer, "draw": draw, "cfg": cfg, "seed": seed,
                               "strategy": strategy, "engine": engine, "threads": torch.get_num_threads()},
            scaling_config=scaling,
            torch_config=TorchConfig(backend="nccl" if gpus else "gloo"),
            run_config=RunConfig(storage_path=str(storage), name="train",
                                 failure_config=FailureConfig(controller_failure_limit=0)),
        )
        try:
            result = trainer.fit()
        except Exception as e:
            if "WorkerGroupStartupTimeoutError" not in f"{type(e).__name__} {e!r} {e.__cause__!r}":
                raise
            raise ScaleError(_short(scaling.total_resources, workers, f"Ray Train could not start its {workers} "
                                    f"workers in {START_S:g} s")) from None
        with result.checkpoint.as_directory() as got:
            state = torch.load(Path(got) / STATE, weights_only=True, map_location="cpu")
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    with torch.no_grad():
        model.load_state_dict(state)
    stats = TrainStats(**result.metrics["stats"])
    if on_step:
        on_step(cfg.steps, stats.final_loss)
    return stats
