"""TensorBoard: event files under `RUN/tensorboard/`, written with PyTorch's `SummaryWriter`.

Scalars go under their key with the axis's step; text (the gate's reasons, monitor alerts) as
TensorBoard text; the parameters as one markdown table. A resumed run writes a new event file in
the same directory, which TensorBoard reads as the same run. `tensorboard --logdir RUN/tensorboard`.
"""

from __future__ import annotations

from pathlib import Path

DIR = "tensorboard"


class TensorBoard:
    name = "tensorboard"

    def __init__(self, logdir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer, self.ident, self.link = SummaryWriter(str(logdir)), str(logdir), str(logdir)

    def params(self, flat: dict[str, str]) -> None:
        rows = "\n".join(f"| {k} | {v} |" for k, v in flat.items())
        self.writer.add_text("config", "| key | value |\n|---|---|\n" + rows, 0)

    def log(self, values: dict[str, float], axis: str, step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def text(self, key: str, value: str, axis: str, step: int) -> None:
        self.writer.add_text(key, value, step)

    def close(self) -> None:
        self.writer.close()


def open_run(run_dir: Path, run_name: str, ident: str | None, config: dict) -> TensorBoard:
    return TensorBoard(run_dir / DIR)
