"""Named points where a test may SIGKILL the process (`RSI_KILL_AT=<cycle>/<stage>/<where>`): the
one piece of fault injection the product carries; the harness that drives it is `rsi.run.faults`.

`<where>` is a point's name (`commit`, `sft/saved-40`, ...), or `progress-<P>`: the first time a
progress bar of that stage reaches P percent of its work with some of it left (`progress.bar`), so a
kill lands inside the stage on its own work, never on a clock."""

from __future__ import annotations

import os
import signal

KILL_ENV = "RSI_KILL_AT"


ONCE_ENV = "RSI_KILL_ONCE"  # a file's path: the first process to reach the point creates it and dies, no other


def crash_point(cycle: object, stage: str, where: str) -> None:
    """SIGKILL this process here if `RSI_KILL_AT` names this point (`<cycle>/<stage>/<where>`); with
    `RSI_KILL_ONCE` set, only the first process of all to get here (a restarted worker goes on)."""
    if os.environ.get(KILL_ENV) == f"{cycle}/{stage}/{where}":
        if once := os.environ.get(ONCE_ENV):
            try:
                os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
        os.kill(os.getpid(), signal.SIGKILL)


def crash_at_progress(cycle: object, stage: object, done: int, total: int) -> None:
    """SIGKILL this process if `RSI_KILL_AT` is `<cycle>/<stage>/progress-<P>` and a bar of that stage
    has done P % or more of its `total`, not all of it."""
    want = os.environ.get(KILL_ENV, "")
    head, sep, pct = want.rpartition("/progress-")
    if sep and head == f"{cycle}/{stage}" and 0 < total and done < total and 100 * done >= int(pct) * total:
        os.kill(os.getpid(), signal.SIGKILL)
