"""Memory and pids cgroups (v1) that cap a sandbox slot's whole process tree, measure its CPU
time (cpuacct), and kill it.

RLIMIT_AS caps one process, so a program that forks eight 900 MB children passes it; a memory
cgroup caps their sum. RLIMIT_NPROC counts every process of the uid system-wide, and tasks in
exited PID namespaces stay charged for a while after they are reaped (measured here: 150 quick
runs under one uid hit a limit of 64), so the pids cgroup bounds fork and thread bombs instead.

Each slot gets `rsi-sandbox-<host pid>-<pool>/slot-<i>` under the host process's own cgroup in both
hierarchies; the sandbox's launcher writes its pid into them before it starts the program.
Directories of host processes that no longer exist are removed when a new pool starts.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Collection
from pathlib import Path

CONTROLLERS = ("memory", "pids", "cpuacct")
PREFIX = "rsi-sandbox-"


class CgroupError(RuntimeError):
    """The cgroups a slot needs cannot be created or used."""


def controller_dirs(mounts: str | None = None, own: str | None = None) -> dict[str, Path]:
    """The host process's own cgroup directory in the memory and pids v1 hierarchies.

    Raises CgroupError naming what is missing."""
    mounts = Path("/proc/self/mounts").read_text() if mounts is None else mounts
    own = Path("/proc/self/cgroup").read_text() if own is None else own
    roots: dict[str, Path] = {}
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == "cgroup":
            for c in CONTROLLERS:
                if c in fields[3].split(","):
                    roots[c] = Path(fields[1])
    paths: dict[str, str] = {}
    for line in own.splitlines():
        _, names, path = line.split(":", 2)
        for c in names.split(","):
            paths[c] = path
    missing = [c for c in CONTROLLERS if c not in roots or c not in paths]
    if missing:
        raise CgroupError(f"no cgroup v1 hierarchy with the {' and '.join(missing)} controller is mounted "
                          "(cgroup v2-only machines are not supported yet)")
    return {c: roots[c] / paths[c].lstrip("/") for c in CONTROLLERS}


class SlotCgroup:
    """The memory, pids and cpuacct cgroups of one sandbox slot."""

    def __init__(self, base: dict[str, Path], slot: int) -> None:
        self.dirs = {c: base[c] / f"slot-{slot}" for c in CONTROLLERS}
        for d in self.dirs.values():
            d.mkdir(exist_ok=True)

    @property
    def procs_files(self) -> list[str]:
        """The files the launcher writes its pid into to join the slot."""
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def _write(self, controller: str, name: str, value: str) -> None:
        (self.dirs[controller] / name).write_text(value)

    def _read(self, controller: str, name: str) -> str:
        return (self.dirs[controller] / name).read_text()

    def set_limits(self, memory_bytes: int, pids: int) -> None:
        swap = self.dirs["memory"] / "memory.memsw.limit_in_bytes"
        if swap.exists():  # swap accounting: memory + swap gets the same cap (memsw >= memory always)
            swap.write_text("-1")
        self._write("memory", "memory.limit_in_bytes", str(memory_bytes))
        if swap.exists():
            swap.write_text(str(memory_bytes))
        self._write("pids", "pids.max", str(pids))

    def reset_counters(self) -> None:
        self._write("memory", "memory.max_usage_in_bytes", "0")
        self._write("cpuacct", "cpuacct.usage", "0")

    def cpu_seconds(self) -> float:
        """CPU time of every process that ran in the slot since `reset_counters`."""
        return int(self._read("cpuacct", "cpuacct.usage")) / 1e9

    def oom_kills(self) -> int:
        for line in self._read("memory", "memory.oom_control").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return int(self._read("memory", "memory.failcnt"))  # kernels without the counter

    def peak_memory_bytes(self) -> int:
        return int(self._read("memory", "memory.max_usage_in_bytes"))

    def pids(self) -> set[int]:
        out: set[int] = set()
        for c in CONTROLLERS:
            out.update(int(p) for p in self._read(c, "cgroup.procs").split())
        return out

    def kill_all(self, spare: Collection[int] = (), timeout_s: float = 5.0) -> None:
        """SIGKILL every process in the slot but those in `spare` until none is left (pids.max caps a
        fork bomb)."""
        deadline = time.monotonic() + timeout_s
        while pids := self.pids() - set(spare):
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise CgroupError(f"processes {sorted(pids)} in {self.dirs['pids']} survived SIGKILL")
            time.sleep(0.001)

    def remove(self) -> None:
        self.kill_all()
        for d in self.dirs.values():
            _rmdir(d)


_pools = itertools.count()


def make_base(own: dict[str, Path] | None = None) -> dict[str, Path]:
    """Create a new pool's `rsi-sandbox-<pid>-<n>` directories, removing those of dead processes."""
    own = controller_dirs() if own is None else own
    base = {c: own[c] / f"{PREFIX}{os.getpid()}-{next(_pools)}" for c in CONTROLLERS}
    for c, d in own.items():
        _remove_stale(d)
        try:
            base[c].mkdir(exist_ok=True)
        except OSError as e:
            raise CgroupError(f"cannot create the {c} cgroup {base[c]}: {e.strerror}") from None
    return base


def remove_base(base: dict[str, Path]) -> None:
    for d in base.values():
        _rmdir(d)


def _remove_stale(parent: Path) -> None:
    for d in parent.glob(f"{PREFIX}*"):
        pid = d.name[len(PREFIX):].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            for slot in d.glob("slot-*"):
                for p in (slot / "cgroup.procs").read_text().split():
                    try:
                        os.kill(int(p), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                _rmdir(slot)
            _rmdir(d)


def _rmdir(d: Path, timeout_s: float = 5.0) -> None:
    """rmdir a cgroup; it is busy for a moment after its last process is reaped."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)
