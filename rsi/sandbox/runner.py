"""One sandbox slot: a waiting interpreter inside the isolation chain, handed one program at a time.

A `Slot` owns a uid (`rsi.sandbox.uids`), memory + pids + cpuacct cgroups (`SlotCgroup`) and a
server (`rsi.sandbox.server`) started under the full chain (`rsi.sandbox.isolation.command`),
restarted whenever it is gone or a run asks for other fixed limits (`_fixed`: memory, processes,
address space, stack, file size, open files, tmpfs size; wall clock, CPU time and output caps are
set per run). `run` hands the server a program
with fresh pipes, feeds stdin, reads capped output, enforces the wall clock and the tree's CPU
time, and kills whatever the program left (every process of the slot but the server) before it
returns. How the program ended is the server's `waitpid`: an exit status and a death by signal are
told apart, so `sys.exit(152)` is exit status 152, never a signal.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rsi.errors import SandboxUnavailable
from rsi.sandbox.cgroups import SlotCgroup
from rsi.sandbox.isolation import command, data_fd, seccomp_program
from rsi.sandbox.limits import Execution, Limits
from rsi.sandbox.uids import UidLease

_CHUNK = 1 << 16
CPU_POLL_S = 0.05
START_S = 10.0  # a server that is not ready by then did not start
SERVER = (Path(__file__).with_name("server.py")).read_bytes()
SERVER_PIDS = 2  # bwrap and the server: the pids cgroup allows the program `limits.pids` more


class SandboxError(SandboxUnavailable):
    """The slot's server could not start: the sandbox is unavailable (a clear error, never a sample's fault)."""


class Slot:
    """One isolated slot; not thread-safe (the pool hands each slot to one thread at a time)."""

    def __init__(self, base: dict[str, Path], index: int) -> None:
        self.lease = UidLease()
        self.uid = self.lease.uid
        self.cgroup = SlotCgroup(base, index)
        self._proc: subprocess.Popen | None = None
        self._ctl: socket.socket | None = None
        self._limits: Limits | None = None
        self._spare: set[int] = set()

    def run(self, program: str, stdin: bytes, limits: Limits, args: tuple[str, ...] = ()) -> Execution:
        """Run `program` (Python source) with `stdin` under `limits`."""
        if self._proc is None or self._proc.poll() is not None or _fixed(self._limits) != _fixed(limits):
            self._start(limits)
        cg = self.cgroup
        cg.reset_counters()
        oom_before = cg.oom_kills()
        fds = [data_fd(program.encode(), "rsi-program")]
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        header = json.dumps({"args": list(args), "limits": limits.describe()}).encode()
        start = time.monotonic()
        try:
            socket.send_fds(self._ctl, [header], [fds[0], in_r, out_w, err_w])
        finally:
            for fd in (fds[0], in_r, out_w, err_w):
                os.close(fd)
        status, killed, out, err = None, None, b"", b""
        try:
            out, err, status, killed = _communicate(self._ctl, in_w, out_r, err_r, stdin, limits,
                                                    start + limits.wall_s, cg, self._spare)
        finally:
            for fd in (out_r, err_r):
                os.close(fd)
            if status is None:  # killed, or interrupted: end the program, then hear how it ended
                cg.kill_all(spare=self._spare)
                status = self._status(timeout=1.0)
            cg.kill_all(spare=self._spare)  # anything the program left behind
            if not status or not self._reaped():  # the server is gone (the OOM killer may pick it) or stuck
                self._stop()
        wall = time.monotonic() - start
        cpu = cg.cpu_seconds()
        status = status or {"signal": signal.SIGKILL}
        sig, code = status.get("signal"), status.get("exit")
        if killed in (None, "cpu_time") and cg.oom_kills() > oom_before:
            killed = "memory"  # the memory cgroup struck first: the CPU poll only ends what it left running
        # RLIMIT_CPU's signals; the same signal sent by the program itself is just a signal. Told apart by the
        # program's own CPU time (the server's wait4 at its death; the slot's cgroup when the server died): the
        # kernel checks the limit at ticks on a sample of that count, which read 0.988-1.003 s at a 1 s limit
        # (20 runs beside 3 busy processes on 2 cores), so a tenth of the limit is left for the sampling
        own = status.get("cpu_s", cpu)
        if killed is None and sig in (signal.SIGXCPU, signal.SIGKILL) and own >= 0.9 * limits.cpu_s:
            killed = "cpu_time"
        return Execution(
            exit_code=code, signal=sig, killed=killed,
            stdout=out.decode("utf-8", "replace"), stderr=err.decode("utf-8", "replace"),
            stdout_truncated=len(out) >= limits.output_bytes, stderr_truncated=len(err) >= limits.output_bytes,
            wall_s=wall, cpu_s=cpu, peak_memory_mb=cg.peak_memory_bytes() / (1 << 20), limits=limits,
        )

    @property
    def server_pids(self) -> set[int]:
        return set(self._spare)

    def _reaped(self) -> bool:
        """Ask the server to reap every process the run left (all killed by now); True once it has."""
        try:
            self._ctl.send(b"reap")
        except OSError:
            return False
        self._ctl.settimeout(1.0)
        try:
            return self._ctl.recv(16) == b"clean"
        except (TimeoutError, OSError):
            return False

    def _status(self, timeout: float) -> dict | None:
        """The server's report on the program it ran, or None if it sent none in time."""
        self._ctl.settimeout(timeout)
        try:
            msg = self._ctl.recv(1 << 12)
        except (TimeoutError, OSError):
            return None
        return json.loads(msg) if msg else None

    def _start(self, limits: Limits) -> None:
        self._stop()
        self.cgroup.set_limits(limits.memory_mb << 20, limits.pids + SERVER_PIDS)
        host, inside = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = [data_fd(seccomp_program(), "rsi-seccomp"), data_fd(SERVER, "rsi-server"), inside.fileno()]
        try:
            self._proc = _launch(
                command(limits, self.uid, self.cgroup.procs_files, fds[0], fds[1], (str(fds[2]),)),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                pass_fds=fds, env={}, cwd="/", process_group=0)
        finally:
            os.close(fds[0])
            os.close(fds[1])
            inside.close()
        self._ctl, self._limits = host, limits
        if self._status(START_S) != {"ready": True}:
            err = self._proc.stderr.read(2000).decode(errors="replace") if self._proc.poll() is not None else ""
            self._stop()
            raise SandboxError(f"the sandbox server of slot uid {self.uid} did not start: {err.strip() or 'no answer'}"
                               ". Run `rsi doctor`.")
        self._spare = self.cgroup.pids()

    def _stop(self) -> None:
        """End the server: closing its socket ends it; the cgroup's SIGKILL makes sure."""
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None
        if self._proc is not None:
            self.cgroup.kill_all(spare={self._proc.pid})  # the sandbox first: bwrap then reaps and exits
            try:
                self._proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc.stderr.close()
            self._proc = None
        self._limits, self._spare = None, set()

    def close(self) -> None:
        try:
            self._stop()
            self.cgroup.remove()
        finally:
            self.lease.release()


_launcher: tuple[int, ThreadPoolExecutor] | None = None
_launcher_lock = threading.Lock()


def _launch(argv: list[str], **popen) -> subprocess.Popen:
    """`subprocess.Popen(argv, **popen)` from one thread that lives as long as this process.

    bwrap's --die-with-parent is PR_SET_PDEATHSIG, which fires when the *thread* that forked it
    ends: a server started from `Sandbox.map`'s worker threads (or any short-lived thread of a
    caller) would be killed when that thread ends, under the next run's feet."""
    global _launcher
    with _launcher_lock:
        if _launcher is None or _launcher[0] != os.getpid():  # a forked child has no such thread
            _launcher = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="rsi-sandbox-launcher"))
        pool = _launcher[1]
    return pool.submit(subprocess.Popen, argv, **popen).result()


def _fixed(limits: Limits | None) -> tuple | None:
    """The limits a server is started with (the chain's and the cgroup's); the rest are set per run."""
    if limits is None:
        return None
    return (limits.memory_mb, limits.pids, limits.address_space_mb, limits.stack_mb, limits.file_mb,
            limits.open_files, limits.tmpfs_mb)


def _communicate(ctl: socket.socket, in_w: int, out_r: int, err_r: int, stdin: bytes, limits: Limits,
                 deadline: float, cgroup: SlotCgroup, spare: set[int]):
    """Write stdin and read stdout/stderr up to the cap until the server has reported the program's
    end and both pipes are closed, or until the deadline, or until the tree's CPU time (checked
    every CPU_POLL_S) passes `limits.cpu_s`. When the program ends, every process of the slot but
    `spare` (the server) is killed, which closes the pipes whatever it left holding them.
    Returns (stdout, stderr, status or None: {} when the server died, kill reason or None)."""
    bufs = {out_r: bytearray(), err_r: bytearray()}
    sel = selectors.DefaultSelector()
    for fd in bufs:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    sel.register(ctl, selectors.EVENT_READ)
    pending = memoryview(stdin)
    if pending:
        os.set_blocking(in_w, False)
        sel.register(in_w, selectors.EVENT_WRITE)
    else:
        os.close(in_w)
        in_w = -1
    status, killed, reading = None, None, set(bufs)
    try:
        while reading or status is None:
            left = deadline - time.monotonic()
            if left <= 0:
                killed = "timeout"
                break
            if status is None and cgroup.cpu_seconds() > limits.cpu_s:
                killed = "cpu_time"
                break
            for key, _ in sel.select(min(left, CPU_POLL_S)):
                fd = key.fd
                if key.fileobj is ctl:
                    sel.unregister(ctl)
                    try:
                        msg = ctl.recv(1 << 12)
                    except OSError:  # ECONNRESET: the server died with our job unread
                        msg = b""
                    status = json.loads(msg) if msg else {}
                    cgroup.kill_all(spare=spare)
                elif fd in bufs:
                    chunk = os.read(fd, _CHUNK)
                    if not chunk:
                        sel.unregister(fd)
                        reading.discard(fd)
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
                        os.close(in_w)
                        in_w = -1
            if killed:
                break
    finally:
        sel.close()
        if in_w >= 0:
            os.close(in_w)
    return bytes(bufs[out_r]), bytes(bufs[err_r]), status, killed
