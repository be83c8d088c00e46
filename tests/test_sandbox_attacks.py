"""The adversarial suite: hostile programs (tests/sandbox_attacks/*.py) run in the sandbox.

Every program prints "ESCAPED: ..." if it gets something it must not; each must not, must end
the way its entry in EXPECT says, and must leave no process behind. The host checks what a
program cannot see from inside: a TCP listener and an abstract unix socket no connection may
reach, processes of the slots' uids outside the sandbox that `kill -1` must not reach, its own
environment, and files that must not appear. `hacks/*.py` are reward hacks submitted as the
solution of a function task: each must score 0.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import TEST_LIMITS

from rsi.sandbox.grading import HARNESS, function_job, grade_function

ATTACKS = Path(__file__).parent / "sandbox_attacks"
CANARY = "rsi-canary-" + secrets.token_hex(6)
ESCAPE_GLOBS = ["/tmp/rsi-escape*", "/var/tmp/rsi-escape*", "/dev/shm/rsi-escape*", "/root/rsi-escape*",
                "/rsi-escape*", "/work/rsi-escape*", "/usr/rsi-escape*", "/etc/rsi-escape*"]


def _killed(*reasons):
    return lambda ex: ex.killed in reasons


def _prints(prefix, check):
    def ok(ex):
        line = next(ln for ln in ex.stdout.splitlines() if ln.startswith(prefix))
        return check(line.split()[-1])
    return ok


EXPECT = {
    "fork_bomb": _killed("cpu_time", "timeout"),
    "thread_bomb": _prints("threads", lambda n: int(n) < TEST_LIMITS.pids),
    "memory_bomb": lambda ex: ex.killed == "memory" or "MemoryError" in ex.stderr,
    "memory_bomb_huge": lambda ex: ex.stdout.strip() == "refused",
    "memory_bomb_many": _killed("memory"),
    "disk_fill": _prints("wrote_mb", lambda mb: int(mb) <= TEST_LIMITS.tmpfs_mb),
    "big_file": lambda ex: "File too large" in ex.stderr,  # Python ignores SIGXFSZ: write() fails with EFBIG
    "stdout_flood": lambda ex: ex.killed == "output_limit" and len(ex.stdout) == TEST_LIMITS.output_bytes,
    "stderr_flood": lambda ex: ex.killed == "output_limit" and ex.stderr_truncated,
    "sleep_forever": _killed("timeout"),
    "busy_loop": _killed("cpu_time"),
    # ok: it ended by itself; a daemon that kept the run open would have been killed at the wall limit
    "setsid_daemon": lambda ex: ex.ok and ex.killed is None,
    "daemon_holds_pipes": lambda ex: ex.ok and ex.killed is None,
    "deep_recursion": lambda ex: ex.signal == signal.SIGSEGV or ex.killed == "memory",
    "fd_exhaust": _prints("fds", lambda n: int(n) < TEST_LIMITS.open_files),
    "env_leak": lambda ex: ex.ok and "env keys ['HOME', 'LANG', 'PATH', 'PWD']" in ex.stdout,
    "cgroup_escape": lambda ex: ex.ok,
}
NAMES = sorted(p.stem for p in ATTACKS.glob("*.py"))
# the CPU limit, not the wall limit, must stop a busy loop: a wall limit a loaded machine cannot reach first
LIMITS = {"busy_loop": replace(TEST_LIMITS, wall_s=60.0)}


def _processes_of(uids: set[int]) -> set[int]:
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            uid_line = next(ln for ln in status.read_text().splitlines() if ln.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if int(uid_line.split()[1]) in uids:
            found.add(int(status.parent.name))
    return found


@pytest.fixture(scope="module")
def host(sandbox):
    """Listeners, same-uid sleepers outside the sandbox, and the canary in our environment."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    tcp.setblocking(False)
    unix_name = "rsi-test-" + secrets.token_hex(4)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind("\0" + unix_name)
    unix.listen()
    unix.setblocking(False)
    uids = set(sandbox.uids)
    sleepers = [subprocess.Popen(["/usr/bin/setpriv", f"--reuid={u}", f"--regid={u}", "--clear-groups",
                                  "/usr/bin/sleep", "600"]) for u in uids]
    os.environ["RSI_TEST_CANARY"] = CANARY
    yield {"tcp": tcp, "unix": unix, "args": (str(tcp.getsockname()[1]), unix_name, CANARY),
           "uids": uids, "sleepers": sleepers}
    del os.environ["RSI_TEST_CANARY"]
    for p in sleepers:
        p.kill()
        p.wait()
    tcp.close()
    unix.close()


def test_the_suite_is_large_enough():
    assert len(NAMES) >= 30
    assert len(list((ATTACKS / "hacks").glob("*.py"))) >= 5


@pytest.mark.parametrize("name", NAMES)
def test_attack_is_contained(sandbox, host, name):
    ex = sandbox.run((ATTACKS / f"{name}.py").read_text(), args=host["args"], limits=LIMITS.get(name))
    assert "ESCAPED" not in ex.stdout + ex.stderr, ex.stdout
    if name in EXPECT:
        assert EXPECT[name](ex), ex
    else:  # a program that only probes must end by itself, without a crash
        assert ex.ok, ex
    assert ex.peak_memory_mb <= TEST_LIMITS.memory_mb + 1
    ours = {p.pid for p in host["sleepers"]} | sandbox.server_pids()
    assert _processes_of(host["uids"]) == ours, "a sandboxed process outlived its run"
    assert all(p.poll() is None for p in host["sleepers"]), "a process outside the sandbox was signalled"
    for listener in (host["tcp"], host["unix"]):
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert not [p for g in ESCAPE_GLOBS for p in Path("/").glob(g.lstrip("/"))]


@pytest.mark.parametrize("name", sorted(p.stem for p in (ATTACKS / "hacks").glob("*.py")))
def test_reward_hack_scores_zero(sandbox, name):
    source = (ATTACKS / "hacks" / f"{name}.py").read_text()
    inputs = [[1, 2], [3, 4], [10, -5], [7, 7]]
    stdin, token = function_job(source, "add", inputs)
    graded = grade_function(sandbox.run(HARNESS, stdin), token, [3, 7, 5, 14])
    assert graded.passed == 0 and not graded.correct, graded


def test_an_honest_solution_passes(sandbox):
    stdin, token = function_job("def add(a, b):\n    print('debug')\n    return a + b\n", "add", [[1, 2], [3, 4]])
    graded = grade_function(sandbox.run(HARNESS, stdin), token, [3, 7])
    assert graded.correct and graded.reason == "all tests pass"
