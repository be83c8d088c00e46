"""Data-parallel SFT's one difference from one process: each rank trains on its share of a batch.

`Shard()` is one process (rank 0 of 1): `take` keeps the whole batch and the rest does nothing.
`Shard.of_group()` is this rank of a `torch.distributed` process group (Ray Train's, in
`rsi.scale.ray_train`): every rank draws the same batch from the same seed, `take` keeps rows
rank, rank + world, ...; `sync` averages the gradients over the ranks after each backward (the
engine's packed forward reads the weights directly, so torch's DDP wrapper, which hooks a module's
forward, does not apply; under FSDP the sharded parameters reduce their own gradients and `sync`
is not used); `mean` and `total` reduce the loss and the counts that are logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rsi.engine.device import for_collective


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1
    reduce_grads: bool = False  # data-parallel replicas average gradients; FSDP's shards do it themselves

    @staticmethod
    def of_group(reduce_grads: bool = True) -> Shard:
        import torch.distributed as dist

        return Shard(dist.get_rank(), dist.get_world_size(), reduce_grads)

    def take(self, batch: Sequence) -> list:
        return list(batch[self.rank::self.world])

    def sync(self, params: Sequence[torch.nn.Parameter]) -> None:
        if self.world == 1 or not self.reduce_grads:
            return
        import torch.distributed as dist

        grads = [p.grad for p in params if p.grad is not None]
        flat = torch.cat([g.flatten() for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        k = 0
        for g in grads:
            g.copy_(flat[k:k + g.numel()].view_as(g))
            k += g.numel()

    def mean(self, x: float) -> float:
        return self._reduced(x) / self.world

    def total(self, n: int) -> int:
        return round(self._reduced(float(n)))

    def _reduced(self, x: float) -> float:
        if self.world == 1:
            return x
        import torch.distributed as dist

        t = for_collective(torch.tensor([x], dtype=torch.float64))
        dist.all_reduce(t)
        return float(t)


ONE_PROCESS = Shard()
