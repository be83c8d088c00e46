"""Progress bars and the per-cycle summary line (rich). Quiet when `console.quiet` is set.

On a terminal a bar redraws in place. Anywhere else (a log file, a pipe, a batch job) a bar would
print nothing until its end, so `bar` prints a plain line instead whenever another tenth of the
work is done or a minute has passed since the last line (`LINE_EVERY_S`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

LINE_EVERY_S = 60.0


@contextmanager
def bar(console: Console, description: str, total: int) -> Iterator:
    """`with bar(console, "train", 800) as advance: advance(1, loss=0.3)`."""
    if not console.is_terminal:
        yield _lines(console, description, total)
        return
    progress = Progress(TextColumn("[bold]{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console, transient=False, disable=console.quiet)
    with progress:
        task = progress.add_task(description, total=total, info="")

        def advance(n: int = 1, info: str = "") -> None:
            progress.update(task, advance=n, info=info)

        yield advance


def _lines(console: Console, description: str, total: int):
    """`advance` for a console that is not a terminal: a line per tenth of the work or per minute."""
    state = {"done": 0, "tenth": 0, "last": time.monotonic(), "start": time.monotonic()}

    def advance(n: int = 1, info: str = "") -> None:
        state["done"] += n
        now, tenth = time.monotonic(), (10 * state["done"]) // max(total, 1)
        if console.quiet or (tenth <= state["tenth"] and now - state["last"] < LINE_EVERY_S):
            return
        state["tenth"], state["last"] = tenth, now
        console.print(escape(f"{description} {state['done']}/{total} {info} {now - state['start']:.0f}s"),
                      highlight=False, soft_wrap=True)

    return advance
