"""Experiment tracking: a run's figures sent to TensorBoard, MLflow, Weights & Biases and trackio
(`track: [tensorboard, mlflow, wandb, trackio]`, any subset; default none).

The ledger stays the record; a tracker is a copy made for the tools researchers already watch. One
small adapter per tracker (`to_tensorboard`, `to_mlflow`, `to_wandb`, `to_trackio`) behind one
interface (`Tracker`), and `Tracking`, which the loop holds, fans each figure out to them:

- at the start, the resolved config as parameters;
- while a model trains, its SFT loss (up to `POINTS` points a stage, axis `train_step`);
- after each stage commits, what that stage recorded, read back from the ledger
  (`rsi.stages.tracked`): GRPO's step statistics (axis `grpo_step`), and per cycle (axis `cycle`)
  held-out accuracy per difficulty, kept fraction, label accuracy, the gate's decision and reason,
  every monitor's reading and alert, the frontier and the cost (wall, CPU, tokens).

A resumed run continues the same tracked runs: each tracker's run id is recorded in the ledger (a
`tracking` event) when it is first made and looked up on resume. A tracker that fails at any point
is named once on the console and left out for the rest of the process; the loop goes on and the
ledger loses nothing. A tracker whose package is missing is refused before the run starts
(`rsi.resolve`), naming the extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.markup import escape

TRACKERS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb", "trackio": "trackio"}  # name: package
EXTRA = "pip install 'rsi[track]'"
POINTS = 100  # SFT loss points a train stage sends at most


class Tracker(Protocol):
    name: str
    ident: str  # what finds this tracked run again on resume
    link: str  # where a person finds it (a directory, a URI)

    def params(self, flat: dict[str, str]) -> None: ...

    def log(self, values: dict[str, float], axis: str, step: int) -> None: ...

    def text(self, key: str, value: str, axis: str, step: int) -> None: ...

    def close(self) -> None: ...


def missing(names: list[str]) -> list[str]:
    """The trackers among `names` whose package is not installed."""
    return [n for n in names if importlib.util.find_spec(TRACKERS[n]) is None]


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    """A nested config as {"a.b.c": text} parameters."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out |= flatten(v, key + ".")
        else:
            out[key] = str(v)
    return out


class Tracking:
    """The run's trackers, each call fanned out and guarded (see the module docstring)."""

    def __init__(self, trackers: list[Tracker] | None = None, console: Console | None = None) -> None:
        self.trackers, self.console = list(trackers or []), console or Console()

    @classmethod
    def off(cls) -> Tracking:
        return cls()

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def _each(self, call: Callable[[Tracker], None]) -> None:
        for t in list(self.trackers):
            try:
                call(t)
            except Exception as e:  # a tracker never stops the loop: named once, then left out
                self.trackers.remove(t)
                self.console.print(f"[yellow]warning:[/] tracker {t.name} failed ({escape(type(e).__name__)}: "
                                   f"{escape(str(e)[:300])}); the run goes on without it, and the ledger has every "
                                   "figure", highlight=False)

    def params(self, flat: dict[str, str]) -> None:
        self._each(lambda t: t.params(flat))

    def log(self, values: dict[str, float], axis: str, step: int) -> None:
        values = {k: float(v) for k, v in values.items() if isinstance(v, int | float) and v == v}  # no None, NaN
        if values:
            self._each(lambda t: t.log(values, axis, step))

    def text(self, key: str, value: str, axis: str, step: int) -> None:
        self._each(lambda t: t.text(key, value, axis, step))

    def sft_steps(self, offset: int, steps: int, member: int = 0) -> Callable[[int, float], None] | None:
        """An `on_step(step, loss)` sending at most `POINTS` of a train stage's losses, or None untracked."""
        if not self:
            return None
        every, key = max(1, steps // POINTS), "train/loss" if member == 0 else f"train/loss_friend{member}"

        def on_step(step: int, loss: float) -> None:
            if step % every == 0 or step == steps:
                self.log({key: loss}, "train_step", offset + step)

        return on_step

    def close(self) -> None:
        self._each(lambda t: t.close())
        self.trackers = []


def open_tracking(names: list[str], run_dir: Path, run_name: str, known: dict[str, str], console: Console,
                  config: dict) -> tuple[Tracking, dict[str, dict]]:
    """The trackers `names` for the run in `run_dir`, each continuing its run in `known` (tracker:
    ident, from the ledger) or starting one; returns them and {tracker: {ident, link}} of those
    started now (for the ledger). A tracker that cannot start is named and left out."""
    tracking, made, fresh = Tracking(console=console), {}, Tracking(console=console)
    for name in names:
        try:
            adapter = importlib.import_module(f"rsi.track.to_{name}")
            t = adapter.open_run(Path(run_dir), run_name, known.get(name), config)
        except Exception as e:
            console.print(f"[yellow]warning:[/] tracker {name} could not start ({escape(type(e).__name__)}: "
                          f"{escape(str(e)[:300])}); the run goes on without it", highlight=False)
            continue
        tracking.trackers.append(t)
        if name not in known:
            made[name] = {"ident": t.ident, "link": t.link}
            fresh.trackers.append(t)
    fresh.params(flatten(config))  # a continued run has its parameters already
    tracking.trackers = [t for t in tracking.trackers if t in fresh.trackers or t.name in known]
    return tracking, made
