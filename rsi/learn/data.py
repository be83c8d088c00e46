"""Training data for the train stage: the ground-truth seed stream and the per-batch mixture.

Seed data is an endless stream of labelled `train` split problems in the seed difficulty range,
item i of it drawn from its own seed, so no seed example is stored. The mixture draws each row of
a batch from one of three pools ("new" = this cycle's accepted samples, "replay" = earlier
cycles', "seed") with the configured fractions; an empty pool's share goes to the others.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from rsi.config import MixConfig, ProposeConfig, SeedDataConfig
from rsi.records import Example
from rsi.tasks import Task, problem
from rsi.tasks.selfplay import proposer_example, proposer_prompt


def seed_stream(task: Task, cfg: SeedDataConfig, propose: ProposeConfig | None = None
                ) -> Callable[[random.Random], Example]:
    """Draw one ground-truth example: a random seed-range difficulty, a random train-split item.

    With self-play (`propose.by: model`), a `propose.seed_share` of the examples are proposals
    written by the task's own program generator, so the model learns the proposer's format."""
    share = propose.seed_share if propose is not None and propose.by == "model" else 0.0

    def draw(rng: random.Random) -> Example:
        d = rng.randint(cfg.min_difficulty, cfg.max_difficulty)
        if share and rng.random() < share:
            assert propose is not None
            return Example(proposer_prompt(propose.prompt, d), proposer_example(rng, d), d, "seed",
                           prefix=propose.response_prefix)
        p = problem(task, d, "train", rng.randrange(500_000_000))  # items above 5e8 are left for proposals
        return Example(p.prompt, p.answer, d, "seed")

    return draw


def mixture(pools: dict[str, Sequence[Example]], seed_draw: Callable[[random.Random], Example],
            mix: MixConfig | None) -> Callable[[random.Random, int], list[Example]]:
    """A `draw(rng, batch_size)` over the pools, for `rsi.learn.sft.train`. With no mix: seed data only."""
    weights = {"seed": 1.0} if mix is None else {
        "new": mix.new if pools.get("new") else 0.0,
        "replay": mix.replay if pools.get("replay") else 0.0,
        "seed": mix.seed,
    }
    names = [k for k, w in weights.items() if w > 0] or ["seed"]
    ws = [weights.get(k, 1.0) for k in names]

    def draw(rng: random.Random, batch_size: int) -> list[Example]:
        out = []
        for name in rng.choices(names, ws, k=batch_size):
            out.append(seed_draw(rng) if name == "seed" else rng.choice(pools[name]))
        return out

    return draw
