"""Progress bars and the per-cycle summary line (rich). Quiet when `console.quiet` is set."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextmanager
def bar(console: Console, description: str, total: int) -> Iterator:
    """`with bar(console, "train", 800) as advance: advance(1, loss=0.3)`."""
    progress = Progress(TextColumn("[bold]{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console, transient=False, disable=console.quiet)
    with progress:
        task = progress.add_task(description, total=total, info="")

        def advance(n: int = 1, info: str = "") -> None:
            progress.update(task, advance=n, info=info)

        yield advance
