"""What a sandboxed program may use, and what one execution did.

`Limits` is the contract the isolation enforces (`rsi.sandbox.isolation` turns it into the
command line and cgroup settings); `Execution` is the record of one run, the only thing that
comes back out of the sandbox.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Limits:
    """Per-execution limits. Memory is capped twice: per process (address space) and for the
    whole process tree (a memory cgroup), which is what actually bounds a many-process bomb."""

    wall_s: float = 10.0  # wall-clock time, enforced by the host (the whole tree is killed)
    cpu_s: int = 5  # CPU seconds of the whole tree (polled) and of each process (RLIMIT_CPU)
    memory_mb: int = 512  # resident memory of the whole tree, tmpfs included (memory cgroup)
    address_space_mb: int = 1024  # virtual memory per process (RLIMIT_AS)
    pids: int = 64  # processes and threads alive at once in the tree (pids cgroup)
    tmpfs_mb: int = 64  # size of each writable directory, /tmp and /dev/shm (thrown away after the run)
    file_mb: int = 16  # largest file a process may write (RLIMIT_FSIZE)
    open_files: int = 256  # file descriptors per process (RLIMIT_NOFILE)
    stack_mb: int = 8  # stack per process, soft and hard limit alike (RLIMIT_STACK)
    output_bytes: int = 1 << 20  # stdout and stderr are each read up to this; more ends the run

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise ValueError(f"sandbox limit {name} must be > 0, got {value!r}")

    def describe(self) -> dict:
        return asdict(self)


KILL_REASONS = ("timeout", "cpu_time", "memory", "output_limit")


@dataclass(frozen=True)
class Execution:
    """One program's run in the sandbox, as the host saw it."""

    exit_code: int | None  # the program's exit status, None when a signal ended it
    signal: int | None  # the signal that ended the program, if one did
    killed: str | None  # why the sandbox ended the run: one of KILL_REASONS, or None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    wall_s: float
    cpu_s: float
    peak_memory_mb: float
    limits: Limits

    @property
    def ok(self) -> bool:
        """Exited by itself with status 0."""
        return self.exit_code == 0 and self.killed is None

    def describe(self) -> dict:
        out = asdict(self)
        out["ok"] = self.ok
        return out
