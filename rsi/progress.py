"""Progress bars and the per-cycle summary line (rich). Quiet when `console.quiet` is set.

On a terminal a bar redraws in place. Anywhere else (a log file, a pipe, a batch job) a bar would
print nothing until its end, so `bar` prints a plain line instead whenever another tenth of the
work is done or a minute has passed since the last line (`LINE_EVERY_S`).

A run also tells readers outside its process (the console) where it is: inside `live(path)` the
loop's `at(cycle, stage)` and every bar's progress are written to `path` (`RUN/progress.json`), at
most once a second (`LIVE_EVERY_S`) and atomically; the file goes when the run ends.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from rsi.crashpoints import crash_at_progress

LINE_EVERY_S = 60.0
LIVE_EVERY_S = 1.0
_live: dict = {"path": None, "state": {}, "written": 0.0}


@contextmanager
def live(path: Path) -> Iterator[None]:
    """Write where the run is to `path` while the block runs (see the module docstring)."""
    _live.update(path=Path(path), state={}, written=0.0)
    try:
        yield
    finally:
        _live["path"] = None
        Path(path).unlink(missing_ok=True)


def at(cycle: int, stage: str) -> None:
    """The loop starts `stage` of `cycle`."""
    _note({"cycle": cycle, "stage": stage, "started": datetime.now(UTC).isoformat(timespec="seconds"),
           "bar": None}, force=True)


def _note(fields: dict, force: bool = False) -> None:
    path = _live["path"]
    if path is None:
        return
    _live["state"].update(fields)
    now = time.monotonic()
    if not force and now - _live["written"] < LIVE_EVERY_S:
        return
    _live["written"] = now
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(_live["state"] | {"updated": time.time()}))
        os.replace(tmp, path)
    except OSError:  # a reader's convenience: never the run's failure
        pass


def _bar_note(description: str, done: int, total: int, info: str, force: bool = False) -> None:
    _note({"bar": {"what": description, "done": done, "total": total, "info": info}}, force)
    if _live["path"] is not None:  # fault injection inside a stage's own work (`rsi.crashpoints`)
        crash_at_progress(_live["state"].get("cycle"), _live["state"].get("stage"), done, total)


@contextmanager
def bar(console: Console, description: str, total: int) -> Iterator:
    """`with bar(console, "train", 800) as advance: advance(1, loss=0.3)`."""
    _bar_note(description, 0, total, "", force=True)
    if not console.is_terminal:
        yield _lines(console, description, total)
        return
    progress = Progress(TextColumn("[bold]{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console, transient=False, disable=console.quiet)
    with progress:
        task = progress.add_task(description, total=total, info="")
        done = [0]

        def advance(n: int = 1, info: str = "") -> None:
            progress.update(task, advance=n, info=info)
            done[0] += n
            _bar_note(description, done[0], total, info)

        yield advance


def _lines(console: Console, description: str, total: int):
    """`advance` for a console that is not a terminal: a line per tenth of the work or per minute."""
    state = {"done": 0, "tenth": 0, "last": time.monotonic(), "start": time.monotonic()}

    def advance(n: int = 1, info: str = "") -> None:
        state["done"] += n
        _bar_note(description, state["done"], total, info)
        now, tenth = time.monotonic(), (10 * state["done"]) // max(total, 1)
        if console.quiet or (tenth <= state["tenth"] and now - state["last"] < LINE_EVERY_S):
            return
        state["tenth"], state["last"] = tenth, now
        console.print(escape(f"{description} {state['done']}/{total} {info} {now - state['start']:.0f}s"),
                      highlight=False, soft_wrap=True)

    return advance
