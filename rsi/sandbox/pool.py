"""A pool of sandbox slots that run programs in parallel.

Each slot has its own uid (`UID_BASE + i`) and its own memory + pids cgroups, so two programs
running at once can neither signal nor starve each other, and a slot is verified empty after
every run. The pool refuses to start (`SandboxUnavailable`) unless every isolation check of
`rsi.sandbox.doctor` passes: code never runs with less isolation than asked for.

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

from rsi.sandbox.cgroups import SlotCgroup, make_base, remove_base
from rsi.sandbox.isolation import UID_BASE
from rsi.sandbox.limits import Execution, Limits
from rsi.sandbox.runner import run_in_slot


@dataclass(frozen=True)
class Job:
    """One program to run: Python source, its standard input and its argv[1:]."""

    program: str
    stdin: str | bytes = ""
    args: tuple[str, ...] = ()


class Sandbox:
    """`slots` isolated slots (default: one per CPU core) sharing one set of default limits."""

    def __init__(self, limits: Limits | None = None, slots: int | None = None) -> None:
        from rsi.sandbox.doctor import require

        require()
        self.limits = limits or Limits()
        self.n_slots = slots or max(1, len(os.sched_getaffinity(0)))
        self._base = make_base()
        self._free: queue.SimpleQueue[tuple[int, SlotCgroup, Limits | None]] = queue.SimpleQueue()
        self._slots = [SlotCgroup(self._base, i) for i in range(self.n_slots)]
        for i, cg in enumerate(self._slots):
            self._free.put((i, cg, None))
        self._closed = False

    def run(self, program: str, stdin: str | bytes = "", args: Sequence[str] = (),
            limits: Limits | None = None) -> Execution:
        """Run one program in the next free slot (blocks while all are busy)."""
        if self._closed:
            raise RuntimeError("this Sandbox is closed")
        limits = limits or self.limits
        i, cg, set_for = self._free.get()
        try:
            if set_for != limits:
                cg.set_limits(limits.memory_mb << 20, limits.pids)
                set_for = limits
            data = stdin.encode() if isinstance(stdin, str) else stdin
            return run_in_slot(program, data, limits, cg, UID_BASE + i, tuple(args))
        finally:
            self._free.put((i, cg, set_for))

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
        for cg in self._slots:
            cg.remove()
        remove_base(self._base)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


_shared: Sandbox | None = None


def shared() -> Sandbox:
    """The process's sandbox for code tasks, started on first use (fail-closed) and closed at exit."""
    global _shared
    if _shared is None:
        import atexit

        _shared = Sandbox(Limits(wall_s=5.0, cpu_s=2, memory_mb=256))
        atexit.register(_shared.close)
    return _shared
