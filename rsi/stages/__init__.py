"""The stages of a cycle, one file each. Each stage is a function (ctx, cycle) that reads its inputs
from the ledger and checkpoints, computes, and commits its outputs and costs in one ledger
transaction (`ledger.stage`), so a run killed at any point redoes at most the stage it was in, with
nothing lost or duplicated.

Cycle 0 has two stages, `base` (train a model from scratch on ground-truth seed data) and
`evaluate`; every later cycle runs `propose`, `generate`, `label`, `train`, `evaluate`, `gate`.
The two that train, `base` and `train`, share `rsi.stages.train`; `monitoring` holds the
monitor readings the stages take, `review` the gate's human side.

The package face names the order only (the loop maps each name to its function), so a reader of
the ledger that imports `rsi.stages.review` does not load the engine (torch, transformers).
"""

from __future__ import annotations


def stages_of(cycle: int) -> tuple[str, ...]:
    return ("base", "evaluate") if cycle == 0 else ("propose", "generate", "label", "train", "evaluate", "gate")


def between_cycles(done: list[tuple[int, str]]) -> bool:
    """Whether a run whose completed stages are `done` stands between two cycles (or before its first)."""
    return not done or done[-1][1] == stages_of(done[-1][0])[-1]
