"""Mid-stage state of a training loop, so a kill loses at most `checkpoint_every` steps.

The SFT loop (`rsi.learn.sft`) and the GRPO loop (`rsi.learn.grpo`) save, every `checkpoint_every` steps and
after their last, what their next step depends on: the trainable weights, the optimiser's state,
the Python and torch random states and the loop's own counters. A rerun of the stage (`rsi
resume` after a kill) restores them and goes on from the step after, to the same weights and
figures as an uninterrupted run (tested against the run's fingerprint). The state lives in
`models/<checkpoint>.partial/<phase>.pt` until the stage commits (a member that finished before
a kill restores its final state and does no step again); a state saved for another call (seed,
steps) is ignored, and a resume that allows changed inputs (`--allow-changed`) drops them all.
It is written with `torch.save` and read back with `weights_only=True` (tensors and plain values;
no code is unpickled).
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from rsi.crashpoints import crash_point


@dataclass(frozen=True)
class Resumable:
    """Where one training loop of one member keeps its state, and how often it saves it."""

    path: Path  # the state file
    every: int  # steps between saves; 0: never
    key: str  # the call it belongs to: phase, seed, steps
    where: tuple[int, str, str] = (0, "", "")  # (cycle, stage, "<checkpoint>/<phase>"), for fault injection

    def restore(self, model: torch.nn.Module, opt: torch.optim.Optimizer, rng: random.Random) -> dict | None:
        """Load the saved state into `model`, `opt` and `rng`; return the loop's counters (with
        "step", the last step done), or None when nothing saved for this call."""
        if not self.every or not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, weights_only=True, map_location="cpu")  # copied to where the model is
        except Exception:  # unreadable (a damaged disk, another torch): the stage starts over, as before
            return None
        if not isinstance(state, dict) or state.get("key") != self.key:
            return None
        with torch.no_grad():
            params = dict(model.named_parameters())
            for name, value in state["weights"].items():
                params[name].copy_(value)
        opt.load_state_dict(state["optimizer"])
        rng.setstate(_tuples(state["rng"]))
        torch.set_rng_state(state["torch_rng"])
        return state["loop"]

    def save(self, step: int, last: int, model: torch.nn.Module, opt: torch.optim.Optimizer, rng: random.Random,
             loop: dict) -> None:
        """Save after `step` when it is a multiple of `every` or the `last` step."""
        if not self.every or (step % self.every and step != last):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        weights = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save({"key": self.key, "weights": weights, "optimizer": opt.state_dict(), "rng": rng.getstate(),
                    "torch_rng": torch.get_rng_state(), "loop": {**loop, "step": step}}, tmp)
        os.replace(tmp, self.path)
        cycle, stage, what = self.where
        crash_point(cycle, stage, f"{what}/saved-{step}")  # fault injection: killed right after a save


def partial_dir(checkpoint: Path) -> Path:
    """Where the member that saves `checkpoint` keeps its mid-stage state."""
    return checkpoint.with_name(checkpoint.name + ".partial")


def clear(checkpoint: Path) -> None:
    """Forget the mid-stage state once the stage that saves `checkpoint` has committed."""
    shutil.rmtree(partial_dir(checkpoint), ignore_errors=True)


def clear_all(models_dir: Path) -> None:
    """Forget every mid-stage state of a run (its inputs changed: a saved state no longer applies)."""
    for d in Path(models_dir).glob("*.partial"):
        shutil.rmtree(d, ignore_errors=True)


def _tuples(x):
    """`random.getstate()` as saved (lists where it had tuples) back in the shape `setstate` takes."""
    return tuple(_tuples(v) for v in x) if isinstance(x, list | tuple) else x
