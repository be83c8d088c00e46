"""Run one program in one sandbox slot: spawn the isolation chain, feed stdin, read capped
output, enforce the wall clock, and make sure nothing of the run is left when it returns."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time

from rsi.sandbox.cgroups import SlotCgroup
from rsi.sandbox.isolation import command, data_fd, seccomp_program
from rsi.sandbox.limits import Execution, Limits

_CHUNK = 1 << 16
CPU_POLL_S = 0.05


def run_in_slot(program: str, stdin: bytes, limits: Limits, cgroup: SlotCgroup, uid: int,
                args: tuple[str, ...] = ()) -> Execution:
    """Run `program` (Python source) with `stdin` under `limits` in the slot `cgroup` as `uid`."""
    cgroup.reset_counters()
    oom_before = cgroup.oom_kills()
    fds = [data_fd(seccomp_program(), "rsi-seccomp"), data_fd(program.encode(), "rsi-program")]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(command(limits, uid, cgroup.procs_files, fds[0], fds[1], args),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=fds, env={}, cwd="/", process_group=0)
    finally:
        for fd in fds:
            os.close(fd)
    try:
        out, err, killed = _communicate(proc, stdin, limits, start + limits.wall_s, cgroup)
        if killed:
            _stop(proc, cgroup)
        proc.wait()
    finally:
        if proc.returncode is None:  # interrupted: never leave the chain running
            _stop(proc, cgroup)
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()
        cgroup.kill_all()
    wall = time.monotonic() - start
    cpu = cgroup.cpu_seconds()
    code = proc.returncode
    # bwrap reports a program ended by signal s as exit status 128 + s.
    sig = code - 128 if code > 128 and code - 128 < signal.NSIG else (-code if code < 0 else None)
    if killed is None and cgroup.oom_kills() > oom_before:
        killed = "memory"
    if killed is None and (sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= limits.cpu_s)):
        killed = "cpu_time"
    return Execution(
        exit_code=None if sig is not None else code, signal=sig, killed=killed,
        stdout=out.decode("utf-8", "replace"), stderr=err.decode("utf-8", "replace"),
        stdout_truncated=len(out) >= limits.output_bytes, stderr_truncated=len(err) >= limits.output_bytes,
        wall_s=wall, cpu_s=cpu, peak_memory_mb=cgroup.peak_memory_bytes() / (1 << 20), limits=limits,
    )


def _stop(proc: subprocess.Popen, cgroup: SlotCgroup) -> None:
    """Kill the run. The sandbox's processes die first and bwrap, spared, reaps its child and
    exits; killing bwrap first would orphan that child to the host's pid 1 as a zombie."""
    cgroup.kill_all(spare=proc.pid)
    try:
        proc.wait(timeout=1)
    except subprocess.TimeoutExpired:  # killed before it became bwrap, or stuck
        proc.kill()
        proc.wait()


def _communicate(proc: subprocess.Popen, stdin: bytes, limits: Limits, deadline: float, cgroup: SlotCgroup):
    """Write stdin and read stdout/stderr up to the cap until the launcher has exited and both
    pipes are closed, or until the deadline, or until the tree's CPU time (all processes
    together, checked every CPU_POLL_S) passes `limits.cpu_s`.
    Returns (stdout, stderr, kill reason or None)."""
    bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    sel = selectors.DefaultSelector()
    for fd in bufs:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    exit_fd = os.pidfd_open(proc.pid)  # readable once the launcher has exited
    sel.register(exit_fd, selectors.EVENT_READ)
    pending = memoryview(stdin)
    if pending:
        os.set_blocking(proc.stdin.fileno(), False)
        sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    killed = None
    waiting = len(bufs) + 1  # open pipes + the launcher
    try:
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                killed = "timeout"
                break
            if cgroup.cpu_seconds() > limits.cpu_s:
                killed = "cpu_time"
                break
            for key, _ in sel.select(min(left, CPU_POLL_S)):
                fd = key.fd
                if fd == exit_fd:
                    sel.unregister(fd)
                    waiting -= 1
                elif fd in bufs:
                    chunk = os.read(fd, _CHUNK)
                    if not chunk:
                        sel.unregister(fd)
                        waiting -= 1
                        continue
                    buf = bufs[fd]
                    buf += chunk[: limits.output_bytes - len(buf)]
                    if len(buf) >= limits.output_bytes:
                        killed = "output_limit"
                else:
                    try:
                        n = os.write(fd, pending[:_CHUNK])
                    except BrokenPipeError:
                        n = len(pending)
                    pending = pending[n:]
                    if not pending:
                        sel.unregister(fd)
                        proc.stdin.close()
            if killed:
                break
    finally:
        sel.close()
        os.close(exit_fd)
    return bytes(bufs[proc.stdout.fileno()]), bytes(bufs[proc.stderr.fileno()]), killed
