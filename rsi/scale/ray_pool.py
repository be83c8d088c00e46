"""The stages' pool on Ray: `scale.workers` actors share the sampling and the verification.

- `connect(cfg)`: Ray installed, the address answering (`local` starts a Ray on this machine; a
  `host:port` address must accept a connection within `CONNECT_S`), and the cluster holding the
  workers asked for (a CPU each, and a GPU each when `engine.device` is CUDA). Each problem is a
  `ScaleError` naming the key, raised before any stage runs.
- `RayPool`: `scale.workers` actors for the whole run (a process starts, and imports torch,
  once). `session(checkpoint, engine)`: each loads the checkpoint once
  (`rsi.engine.samplers.open_sampler`, so `engine.generation: vllm` works in them too), takes
  `SampleJob`s from `ray.util.ActorPool` and gives answers back in job order; when the session
  ends they let the model go, which frees their device for training. `verify(task, pairs)`: the
  run's task rebuilt in each actor (a code task's sandbox starts once), the pairs split into
  chunks, verdicts merged in order.

Every actor computes with the driver's thread count, so on one machine its floats are the
in-process run's; actors are restarted and their call retried when their process dies
(`max_restarts`, `max_task_retries`). Workers only compute and return records: the driver writes
the ledger and the checkpoints.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch

from rsi.config import Config, EngineConfig, TrainConfig
from rsi.crashpoints import crash_point
from rsi.engine.device import choose
from rsi.errors import RsiError
from rsi.learn.resumable import Resumable
from rsi.learn.sft import TrainStats, train
from rsi.records import Problem, Verdict
from rsi.scale.pool import Answers, SampleJob
from rsi.tasks.guard import verify_guarded

CONNECT_S = 30.0  # how long a cluster address may take to answer
RETRIES = 3  # restarts of a dead actor, and retries of its call
RELEASE_S = 120.0  # how long a worker may take to start before it is stopped regardless
# A Ray that `local` starts: its workers at the driver's priority (Ray's default niceness 15 starves
# them while the driver trains on every core: a worker's start then waited for the train stage to
# end), and no idle workers started ahead of the actors.
LOCAL_RAY = {"worker_niceness": 0, "prestart_worker_first_driver": False}


class ScaleError(RsiError):
    """`scale.*` asks for a cluster that is not there (the message names the key)."""


def _ray():
    try:
        import ray
    except ImportError:
        raise ScaleError("config key 'scale.ray.address' is set, but Ray is not installed. Install the extra: "
                         "pip install 'rsi[ray]', or leave scale.ray.address null to run in this process.") from None
    return ray


def _reachable(address: str) -> None:
    """A `host:port` (or `ray://host:port`) address accepts a TCP connection within `CONNECT_S`."""
    rest = address.removeprefix("ray://")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise ScaleError(f"config key 'scale.ray.address': {address!r} is not an address. Allowed: null, 'local', "
                         "'auto' (a Ray started on this machine with `ray start --head`), host:port or ray://host:port.")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_S).close()
    except OSError as e:
        raise ScaleError(f"config key 'scale.ray.address': nothing answers at {address!r} ({e}; waited up to "
                         f"{CONNECT_S:.0f} s). Start the cluster (`ray start --head`), or check the host and "
                         "port.") from None


def on_gpus(cfg: Config) -> bool:
    """Whether the run's models are placed on CUDA (`rsi.engine.device.choose`): then each worker holds a GPU."""
    return choose(cfg.engine).device.type == "cuda"


def connect(cfg: Config):
    """Connect to (or start) the Ray the config names and check it can hold the workers; see the module."""
    ray = _ray()
    address = cfg.scale.ray.address
    if not ray.is_initialized():
        if address not in ("local", "auto"):
            _reachable(address)
        local = {"num_cpus": os.cpu_count(), "_system_config": LOCAL_RAY}
        kwargs = local if address == "local" else {"address": address}
        try:
            ray.init(**kwargs, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ScaleError(f"config key 'scale.ray.address': could not connect to Ray at {address!r}: {e}") from None
    have = ray.cluster_resources()
    workers, gpus = cfg.scale.workers, on_gpus(cfg)
    for kind, need in (("CPU", workers), ("GPU", workers if gpus else 0)):
        if have.get(kind, 0) < need:
            raise ScaleError(f"config key 'scale.workers': {workers} workers need {need} {kind}s, but the Ray cluster "
                             f"at {address!r} has {have.get(kind, 0):g}. Lower scale.workers, or add nodes.")
    return ray


class _Worker:
    """One Ray actor for the run: samples from the checkpoint a job names (opened on first use and
    kept until `close`) and verifies with the run's task. Every call carries what it needs, so a
    restarted actor takes a retried call like any other."""

    def __init__(self, task_ref: str, threads: int):
        import rsi.engine.samplers  # noqa: F401  (imported now, while the driver trains, not on the first job)

        torch.set_num_threads(threads)
        self.task_ref, self.task, self.opened, self.sampler = task_ref, None, None, None

    def run(self, checkpoint: str, engine: dict, j: SampleJob) -> Answers:
        crash_point("ray", "worker", "run")  # fault injection: a worker killed as it takes a job (tests/test_scale.py)
        if self.opened != (checkpoint, engine):
            from rsi.engine.samplers import open_sampler

            self.close()
            self._open = open_sampler(Path(checkpoint), EngineConfig(**engine))
            self.sampler, self.opened = self._open.__enter__(), (checkpoint, engine)
        return self.sampler.sample(j.prompts, j.max_new_tokens, n=j.n, temperature=j.temperature, seed=j.seed,
                                   batch_size=j.batch_size)

    def close(self) -> None:
        """Let the model go (its device memory with it)."""
        if self.opened is not None:
            self.sampler, self.opened = None, None
            self._open.__exit__(None, None, None)

    def node(self) -> str:
        """The Ray node this worker runs on."""
        import ray

        return ray.get_runtime_context().get_node_id()

    def verify(self, pairs: list[tuple[Problem, str]]) -> list[Verdict]:
        import ray

        from rsi.sandbox import pool
        from rsi.tasks import get_task

        if self.task is None:  # a code task's sandbox gets as many slots as this worker has CPUs, not the node's
            pool.SHARED_SLOTS = max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
            self.task = get_task(self.task_ref)
        return verify_guarded(self.task, pairs)


class _RaySession:
    def __init__(self, workers: list, checkpoint: Path, engine: EngineConfig):
        self.workers, self.where = workers, (str(checkpoint), engine.model_dump())

    def run(self, jobs: Sequence[SampleJob], on_rows: Callable[[int], None] | None = None) -> list[Answers]:
        from ray.util import ActorPool

        out = []
        done = ActorPool(self.workers).map(lambda a, j: a.run.remote(*self.where, j), list(jobs))
        for job, answers in zip(jobs, done, strict=True):
            out.append(answers)
            if on_rows:
                on_rows(len(job.prompts) * job.n)
        return out


class RayPool:
    """See the module docstring."""

    def __init__(self, cfg: Config):
        ray = connect(cfg)
        self.ray, self.workers, self.strategy, self.engine = ray, cfg.scale.workers, cfg.scale.strategy, cfg.engine
        self.gpus = 1 if on_gpus(cfg) else 0
        options = {"num_cpus": 1, "num_gpus": self.gpus, "max_restarts": RETRIES, "max_task_retries": RETRIES}
        self._make = partial(ray.remote(_Worker).options(**options).remote, cfg.task, torch.get_num_threads())
        self._actors: list = []
        self._actors = self.actors  # started now: their imports overlap the driver's first stage

    @property
    def actors(self) -> list:
        """The workers, started when first needed (again after a data-parallel train stage)."""
        if not self._actors:
            self._actors = [self._make() for _ in range(self.workers)]
        return self._actors

    @contextmanager
    def session(self, checkpoint: Path, engine: EngineConfig) -> Iterator[_RaySession]:
        try:
            yield _RaySession(self.actors, checkpoint, engine)
        finally:
            self.ray.get([a.close.remote() for a in self.actors])

    def verify(self, task, pairs: Sequence[tuple[Problem, str]]) -> list[Verdict]:
        """`pairs` verified by the run's task (`cfg.task`, rebuilt in each worker), in order; here,
        when its verifier is cheap (`Task.costly_verifier` false: a round trip would cost more)."""
        if not pairs:
            return []
        if task is not None and not getattr(task, "costly_verifier", False):
            return verify_guarded(task, pairs)
        from ray.util import ActorPool

        size = -(-len(pairs) // (4 * self.workers))  # a few chunks per worker, for balance
        chunks = [list(pairs[k:k + size]) for k in range(0, len(pairs), size)]
        done = ActorPool(self.actors).map(lambda a, c: a.verify.remote(c), chunks)
        return [v for chunk in done for v in chunk]

    def train(self, model, tokenizer, draw, cfg: TrainConfig, seed: int, scratch: Path,
              on_step: Callable[[int, float], None] | None = None, resumable: Resumable | None = None) -> TrainStats:
        """SFT in the driver (`scale.strategy: driver`), else data-parallel on Ray Train
        (`rsi.scale.ray_train`), the workers stopped first so the trainer gets their CPUs and GPUs."""
        if self.strategy == "driver":
            return train(model, tokenizer, draw, cfg, seed, on_step=on_step, resumable=resumable)
        from rsi.scale import ray_train

        self.close()
        return ray_train.fit(model, tokenizer, draw, cfg, seed, workers=self.workers, strategy=self.strategy,
                             engine=self.engine, gpus=bool(self.gpus), scratch=scratch, on_step=on_step)

    def close(self) -> None:
        """Stop the workers, once they are up: killed while its creation was being granted, an actor's
        CPU can stay leased for good (seen with Ray 2.60: a data-parallel trainer asking for that CPU
        then waited without end)."""
        if self._actors:
            self.ray.wait([a.__ray_ready__.remote() for a in self._actors], num_returns=len(self._actors),
                          timeout=RELEASE_S)  # a worker that died starting is as good as stopped
        for a in self._actors:
            self.ray.kill(a)
        self._actors = []
