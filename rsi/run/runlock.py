"""One process per run: an OS file lock on `RUN/.rsi-lock`, held while a command changes the run.

`rsi run`, `rsi resume`, `rsi add`, `rsi withdraw` and the verdicts of `rsi review` take it; a
second one on the same run directory fails at once, naming the process that holds it. The lock
is `flock(2)`: the kernel releases it when the holder ends in any way, `kill -9` included, so a
stale lock never blocks a run. The file itself stays (removing it would race a new holder); it
says who held the run last.

    with hold(run_dir, "rsi resume"):
        ...
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rsi.errors import RunDirError
from rsi.ledger.schema import now

LOCK_FILE = ".rsi-lock"


def holder(run_dir: Path) -> dict | None:
    """Who holds (or last held) the run's lock: {pid, command, since}, or None."""
    try:
        return json.loads((Path(run_dir) / LOCK_FILE).read_text() or "null")
    except (OSError, ValueError):
        return None


@contextmanager
def hold(run_dir: Path, command: str | None = None) -> Iterator[None]:
    """Hold the run's lock for the block; RunDirError at once if another process holds it."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:  # not a directory, not writable
        raise RunDirError(f"cannot lock run directory {run_dir} ({path}: {e.strerror}): a command that changes a "
                          "run needs it to be a writable directory; status, report --out and export --out only read "
                          "it") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = holder(run_dir) or {}
            raise RunDirError(
                f"run {run_dir} is in use by process {who.get('pid', '?')} ({who.get('command', 'rsi')}, since "
                f"{who.get('since', '?')}): one process at a time changes a run. Wait for it to end, or stop it "
                f"(touch {Path(run_dir) / 'STOP'}, or kill -TERM {who.get('pid', '<pid>')}).") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "command": command or " ".join(["rsi", *sys.argv[1:]]),
                                 "since": now()}).encode())
        yield
    finally:
        os.close(fd)  # releases the lock
