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
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from rsi.config import EngineConfig, TrainConfig
from rsi.learn.sft import TrainStats

STATE = "state.pt"


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


def fit(model: torch.nn.Module, tokenizer, draw, cfg: TrainConfig, seed: int, *, workers: int, strategy: str,
        engine: EngineConfig, gpus: bool, scratch: Path,
        on_step: Callable[[int, float], None] | None = None) -> TrainStats:
    """Train `model` in place data-parallel on `workers` Ray Train workers; see the module docstring."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    scratch.mkdir(parents=True, exist_ok=True)
    storage = Path(tempfile.mkdtemp(prefix=".ray-train-", dir=scratch))
    try:
        trainer = TorchTrainer(
            _loop,
            train_loop_config={"model": model, "tokenizer": tokenizer, "draw": draw, "cfg": cfg, "seed": seed,
                               "strategy": strategy, "engine": engine, "threads": torch.get_num_threads()},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpus),
            torch_config=TorchConfig(backend="nccl" if gpus else "gloo"),
            run_config=RunConfig(storage_path=str(storage), name="train"),
        )
        result = trainer.fit()
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
