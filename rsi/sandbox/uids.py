"""Sandbox uids unique on the machine: one lock file per uid, held while a slot uses it.

Every slot of every pool of every rsi process (a run, `rsi doctor`, a second run) takes the first
uid in `UID_BASE .. UID_BASE + UID_COUNT - 1` whose lock file under `LOCK_DIR` no one holds
(`flock`, exclusive, non-blocking). The kernel drops the lock when the holder closes it or dies,
so a crashed process frees its uids and nothing is left to clean. Two sandboxes therefore never
share a uid, nor the per-uid kernel quotas that come with one (inotify instances, message queues,
pipe buffers, pending signals).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

UID_BASE = 61000
UID_COUNT = 1000
LOCK_DIR = Path("/run/rsi-sandbox-uids")


class NoFreeUid(RuntimeError):
    """Every sandbox uid is held by some slot on this machine."""


class UidLease:
    """One uid, held until `release` (or until this process ends)."""

    def __init__(self, lock_dir: Path = LOCK_DIR) -> None:
        lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for uid in range(UID_BASE, UID_BASE + UID_COUNT):
            fd = os.open(lock_dir / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            return
        raise NoFreeUid(f"all {UID_COUNT} sandbox uids ({UID_BASE}-{UID_BASE + UID_COUNT - 1}) are in use "
                        f"(lock files in {lock_dir}); close other rsi processes or use fewer slots")

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
