"""Weights & Biases: one W&B run, in offline mode too (`WANDB_MODE=offline`, files under `RUN/wandb/`).

Each axis is a W&B step metric (`define_metric`): `train/*` is plotted against `train_step`,
`grpo*/*` against `grpo_step`, `proposer/*` against `proposer_step`, everything else against
`cycle`, so figures logged on different axes never fight over W&B's own step. The parameters are
the run's config. A resumed run continues the same W&B run (`id`, `resume="allow"`). Project:
`WANDB_PROJECT` when set, else `rsi`.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

AXES = {"train_step": ("train/*",), "grpo_step": ("grpo/*", "grpo_friend*"), "proposer_step": ("proposer/*",),
        "cycle": ("*",)}


class WandB:
    name = "wandb"

    def __init__(self, run_dir: Path, run_name: str, run_id: str | None, config: dict) -> None:
        import wandb

        run_id = run_id or uuid.uuid4().hex[:12]
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "rsi"), name=run_name, id=run_id,
                              resume="allow", dir=str(run_dir), config=config, reinit="create_new",
                              settings=wandb.Settings(silent=True, console="off"))
        for axis, patterns in AXES.items():
            self.run.define_metric(axis, hidden=True)
            for pattern in patterns:
                self.run.define_metric(pattern, step_metric=axis)
        self.ident = run_id
        self.link = str(Path(self.run.dir).parent) if self.run.offline else self.run.url

    def params(self, flat: dict[str, str]) -> None:
        pass  # the config went in at `wandb.init`

    def log(self, values: dict[str, float], axis: str, step: int) -> None:
        self.run.log({**values, axis: step})

    def text(self, key: str, value: str, axis: str, step: int) -> None:
        self.run.log({key: value, axis: step})

    def close(self) -> None:
        self.run.finish()


def open_run(run_dir: Path, run_name: str, ident: str | None, config: dict) -> WandB:
    return WandB(run_dir, run_name, ident, config)
