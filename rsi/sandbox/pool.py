"""A pool of sandbox slots that run programs in parallel.

Each slot (`rsi.sandbox.runner.Slot`) has its own uid, unique on the machine across every pool of
every rsi process (`rsi.sandbox.uids`), its own memory + pids cgroups, and an interpreter waiting
inside its own sandbox, so two programs running at once can neither signal nor starve each other,
and a slot is verified empty after every run. The pool refuses to start (`SandboxUnavailable`)
unless every isolation check of `rsi.sandbox.doctor` passes: code never runs with less isolation
than asked for.

Example:
    >>> with Sandbox() as sb:                                   # doctest: +SKIP
    ...     sb.run("print(int(input()) * 2)", stdin="21").stdout
    '42\\n'
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from rsi.errors import SandboxUnavailable
from rsi.sandbox.cgroups import make_base, remove_base
from rsi.sandbox.doctor import Check, require
from rsi.sandbox.limits import Execution, Limits
from rsi.sandbox.runner import Slot


@dataclass(frozen=True)
class Job:
    """One program to run: Python source, its standard input and its argv[1:]."""

    program: str
    stdin: str | bytes = ""
    args: tuple[str, ...] = ()


class Sandbox:
    """`slots` isolated slots (default: one per CPU core) sharing one set of default limits."""

    def __init__(self, limits: Limits | None = None, slots: int | None = None) -> None:
        require()
        self.limits = limits or Limits()
        self.n_slots = slots or max(1, len(os.sched_getaffinity(0)))
        self._base = make_base()
        self._slots: list[Slot] = []
        self._free: queue.SimpleQueue[Slot] = queue.SimpleQueue()
        self._closed = False
        try:
            for i in range(self.n_slots):
                self._slots.append(Slot(self._base, i))
                self._free.put(self._slots[-1])
        except BaseException:
            self.close()
            raise

    @property
    def uids(self) -> list[int]:
        """The uid each slot runs as."""
        return [s.uid for s in self._slots]

    def server_pids(self) -> set[int]:
        """Host pids of the slots' waiting servers (bwrap and its interpreter): all that may run as
        the slots' uids between two runs."""
        return {pid for s in self._slots for pid in s.server_pids}

    def run(self, program: str, stdin: str | bytes = "", args: Sequence[str] = (),
            limits: Limits | None = None) -> Execution:
        """Run one program in the next free slot (blocks while all are busy)."""
        if self._closed:
            raise RuntimeError("this Sandbox is closed")
        slot = self._free.get()
        try:
            data = stdin.encode() if isinstance(stdin, str) else stdin
            return slot.run(program, data, limits or self.limits, tuple(args))
        finally:
            self._free.put(slot)

    def map(self, jobs: Iterable[Job], on_done: Callable[[Execution], None] | None = None) -> list[Execution]:
        """Run every job, `n_slots` at a time; results in the jobs' order. `on_done` sees each as it ends."""
        def one(job: Job) -> Execution:
            ex = self.run(job.program, job.stdin, job.args)
            if on_done is not None:
                on_done(ex)
            return ex

        with ThreadPoolExecutor(self.n_slots, thread_name_prefix="rsi-sandbox") as pool:
            return list(pool.map(one, jobs))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for slot in self._slots:
            slot.close()
        remove_base(self._base)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


_shared: Sandbox | None = None


SHARED_SLOTS: int | None = None  # the shared sandbox's slots; None: one per CPU core (a Ray worker sets its share)


def shared() -> Sandbox:
    """The process's sandbox for code tasks, started on first use (fail-closed) and closed at exit."""
    global _shared
    if _shared is None:
        import atexit

        _shared = Sandbox(Limits(wall_s=5.0, cpu_s=2, memory_mb=256), slots=SHARED_SLOTS)
        atexit.register(_shared.close)
    return _shared


def end_to_end() -> Check:
    """Run a program that must compute, and must find no network, root or host environment."""
    probe = ("import os, socket\n"
             "try:\n    socket.socket(socket.AF_INET); net = 'open'\nexcept OSError:\n    net = 'closed'\n"
             "print(sum(range(10)), net, os.getuid() != 0, dict(os.environ).get('RSI_DOCTOR_CANARY'))\n")
    os.environ["RSI_DOCTOR_CANARY"] = "leaked"
    try:
        with Sandbox(slots=1) as sb:
            ex = sb.run(probe)
    except SandboxUnavailable as e:
        return Check("end to end", False, str(e).splitlines()[0])
    finally:
        del os.environ["RSI_DOCTOR_CANARY"]
    if ex.ok and ex.stdout.split() == ["45", "closed", "True", "None"]:
        return Check("end to end", True, f"a program ran isolated in {ex.wall_s * 1000:.0f} ms")
    return Check("end to end", False, f"probe program gave {ex.stdout.strip()!r} (stderr {ex.stderr.strip()[-200:]!r}, "
                 f"killed {ex.killed})", "report this with the output of `rsi doctor`")
