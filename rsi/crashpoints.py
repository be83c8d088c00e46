"""Named points where a test may SIGKILL the process (`RSI_KILL_AT=<cycle>/<stage>/<where>`): the
one piece of fault injection the product carries; the harness that drives it is `rsi.run.faults`."""

from __future__ import annotations

import os
import signal

KILL_ENV = "RSI_KILL_AT"


def crash_point(cycle: int, stage: str, where: str) -> None:
    """SIGKILL this process here if `RSI_KILL_AT` names this point (`<cycle>/<stage>/<where>`)."""
    if os.environ.get(KILL_ENV) == f"{cycle}/{stage}/{where}":
        os.kill(os.getpid(), signal.SIGKILL)
