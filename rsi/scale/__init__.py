"""Where the stages' work runs: in this process, or fanned out on a Ray cluster (`scale.ray`).

`open_pool(cfg)` gives the run's `Pool`, which the loop keeps in the stages' `Context`:
`session(checkpoint)` samples with one model (the generate and evaluate stages) and `verify`
verifies answers (the label stage). In-process both are plain calls; on Ray (`rsi.scale.ray_pool`)
they are shared among `scale.workers` actors, results merged in the order asked, so the ledger's
rows are the in-process run's. Only the driver writes the ledger and checkpoints.
"""

from __future__ import annotations

from rsi.config import Config
from rsi.scale.pool import LocalPool, Pool


def open_pool(cfg: Config) -> Pool:
    """The pool `cfg.scale` asks for: in-process without `scale.ray.address`, else Ray (connected
    and checked here, before any stage runs: `rsi.scale.ray_pool.connect`)."""
    if cfg.scale.ray.address is None:
        return LocalPool()
    from rsi.scale.ray_pool import RayPool

    return RayPool(cfg)
