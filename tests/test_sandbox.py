"""The sandbox's behaviour as a user sees it: results, limits, fail-closed start, the CLI."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import TEST_LIMITS
from typer.testing import CliRunner

from rsi.cli import app
from rsi.errors import SandboxUnavailable
from rsi.sandbox import Job, Limits, Sandbox
from rsi.sandbox import doctor as doctor_mod
from rsi.sandbox.cgroups import CgroupError, controller_dirs


def test_runs_a_program_with_stdin_and_args(sandbox):
    ex = sandbox.run("import sys\nprint(sys.stdin.read().upper(), sys.argv[1:])", stdin="abc", args=["x", "y"])
    assert ex.ok and ex.stdout == "ABC ['x', 'y']\n" and ex.signal is None and ex.killed is None
    assert ex.limits == TEST_LIMITS and 0 < ex.wall_s < TEST_LIMITS.wall_s


def test_exit_status_signal_and_stderr_are_reported(sandbox):
    ex = sandbox.run("import sys\nprint('bad', file=sys.stderr)\nsys.exit(3)")
    assert (ex.exit_code, ex.signal, ex.ok, ex.stderr) == (3, None, False, "bad\n")
    ex = sandbox.run("import ctypes\nctypes.string_at(0)")
    assert ex.exit_code is None and ex.signal == signal.SIGSEGV and not ex.ok


def test_output_printed_before_a_timeout_is_kept(sandbox):
    ex = sandbox.run("import time\nprint('started')\ntime.sleep(60)", limits=Limits(wall_s=0.5))
    assert ex.killed == "timeout" and ex.stdout == "started\n" and 0.5 <= ex.wall_s < 30  # not the 60 s sleep


def test_large_stdin_and_output_under_the_cap(sandbox):
    data = "x" * 300_000
    ex = sandbox.run("import sys\nd = sys.stdin.read()\nprint(len(d))\nprint(d[:40000])", stdin=data)
    assert ex.ok and ex.stdout.split("\n")[0] == "300000" and not ex.stdout_truncated


def test_map_keeps_job_order(sandbox):
    jobs = [Job("import sys\nprint(int(sys.stdin.read()) ** 2)", stdin=str(i)) for i in range(6)]
    seen = []
    out = sandbox.map(jobs, on_done=seen.append)
    assert [ex.stdout.strip() for ex in out] == [str(i * i) for i in range(6)] and len(seen) == 6


def test_limits_are_validated():
    with pytest.raises(ValueError, match="memory_mb must be > 0"):
        Limits(memory_mb=0)


def test_fails_closed_naming_what_is_missing(monkeypatch):
    real = shutil.which
    monkeypatch.setattr(doctor_mod.shutil, "which", lambda name, path=None: None if name == "bwrap" else real(name))
    doctor_mod._failures.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match=r"bwrap not found.*apt-get install -y bubblewrap"):
            Sandbox(slots=1)
    finally:
        doctor_mod._failures.cache_clear()


def test_controller_dirs_reads_mounts_and_names_a_missing_controller():
    mounts = ("cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\ncgroup /sys/fs/cgroup/pids cgroup rw,pids 0 0\n"
              "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n")
    own = "5:memory:/a/b\n4:pids:/\n3:cpu,cpuacct:/c\n"
    dirs = controller_dirs(mounts, own)
    assert dirs == {"memory": Path("/sys/fs/cgroup/memory/a/b"), "pids": Path("/sys/fs/cgroup/pids"),
                    "cpuacct": Path("/sys/fs/cgroup/cpu,cpuacct/c")}
    with pytest.raises(CgroupError, match="pids controller"):
        controller_dirs(mounts.replace("rw,pids", "rw"), own)


def test_closing_a_pool_removes_its_cgroups(sandbox):
    sb = Sandbox(TEST_LIMITS, slots=1)
    dirs = list(sb._base.values())
    assert sb.run("print(1)").stdout == "1\n" and all(d.is_dir() for d in dirs)
    sb.close()
    assert not any(d.exists() for d in dirs)
    with pytest.raises(RuntimeError, match="closed"):
        sb.run("print(1)")


def test_cli_sandbox_run_and_doctor(sandbox, tmp_path):
    prog = tmp_path / "p.py"
    prog.write_text("import sys\nprint(sum(map(int, sys.stdin.read().split())))\n")
    (tmp_path / "in.txt").write_text("1 2 3")
    runner = CliRunner()
    r = runner.invoke(app, ["sandbox", "run", str(prog), "--stdin", str(tmp_path / "in.txt"), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["stdout"] == "6\n" and out["ok"] and out["limits"]["wall_s"] == 10.0
    prog.write_text("while True: pass\n")
    r = runner.invoke(app, ["sandbox", "run", str(prog), "--timeout", "0.5"])
    assert r.exit_code == 1 and "killed by the sandbox: wall-clock limit of 0.5 s" in r.output
    r = runner.invoke(app, ["sandbox", "run", str(tmp_path / "missing.py")])
    assert r.exit_code == 2 and "is not a file" in r.output
    r = runner.invoke(app, ["doctor"])
    assert r.exit_code == 0 and "end to end" in r.output and "code tasks can run here" in r.output
    assert "devices and engines for models" in r.output and torch.__version__ in r.output  # the devices too


def test_servers_outlive_the_threads_that_started_them():
    """bwrap's --die-with-parent fires when the *thread* that started it ends: servers started by
    one `map` (its worker threads end when it returns) must still be the ones the next runs use."""
    with Sandbox(TEST_LIMITS, slots=2) as sb:
        assert [ex.stdout for ex in sb.map([Job("print(1)")] * 4)] == ["1\n"] * 4
        servers = sb.server_pids()
        time.sleep(0.3)  # the parent-death signal has long arrived by now
        states = {pid: Path(f"/proc/{pid}/stat").read_text().split()[2] for pid in servers}
        assert all(s in "RS" for s in states.values()), states  # not zombies
        assert [ex.stdout for ex in sb.map([Job("print(2)")] * 4)] == ["2\n"] * 4
        assert sb.server_pids() == servers


def test_servers_die_with_the_host_process():
    """...and still die when the process that owns them is killed outright."""
    script = ("import sys, time\nfrom rsi.sandbox import Job, Sandbox\nsb = Sandbox(slots=2)\n"
              "sb.map([Job('print(1)')] * 2)\nprint(*sb.server_pids(), flush=True)\ntime.sleep(60)")
    host = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        servers = [int(p) for p in host.stdout.readline().split()]
        assert len(servers) == 4
    finally:
        host.kill()
        host.wait()
    deadline = time.monotonic() + 5
    while (left := [p for p in servers if Path(f"/proc/{p}").exists()]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, left


def test_exit_statuses_and_signals_are_told_apart(sandbox):
    ex = sandbox.run("import sys\nsys.exit(152)")  # 128 + 24: it used to read as SIGXCPU
    assert (ex.exit_code, ex.signal, ex.killed) == (152, None, None)
    ex = sandbox.run("import os, signal\nos.kill(os.getpid(), signal.SIGXCPU)")  # the signal, not the CPU limit
    assert (ex.exit_code, ex.signal, ex.killed) == (None, signal.SIGXCPU, None)
    ex = sandbox.run("while True: pass", limits=replace(TEST_LIMITS, wall_s=60.0))  # the CPU limit strikes first:
    # the kernel's SIGXCPU, or the host's SIGKILL when its poll of the slot's CPU time came a tick sooner
    assert (ex.exit_code, ex.killed) == (None, "cpu_time") and ex.signal in (signal.SIGXCPU, signal.SIGKILL)
    ex = sandbox.run("import sys\nsys.exit('why')")
    assert (ex.exit_code, ex.stderr) == (1, "why\n")


def test_a_run_leaves_nothing_for_the_next_one():
    """One slot, so both runs use the same waiting server: files, processes and module state are gone."""
    with Sandbox(TEST_LIMITS, slots=1) as sb:
        first = sb.run("import os, sys, time\nopen('/tmp/left', 'w').write('x')\n"
                       "open('/dev/shm/left', 'w').write('x')\nos.makedirs('/tmp/d/e')\nos.chmod('/tmp/d', 0)\n"
                       "sys.modules['json'].LEFT = 1\n"
                       "if os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\nprint(os.getpid())")
        assert first.ok, first
        second = sb.run("import os, sys\nprint(os.listdir('/tmp'), os.listdir('/dev/shm'), "
                        "hasattr(sys.modules['json'], 'LEFT'), sorted(p for p in os.listdir('/proc') if p.isdigit()))")
        assert second.ok and second.stdout.startswith("[] [] False ['1', "), second  # the server and this run
        assert len(sb.server_pids()) == 2


def test_uids_are_unique_across_pools_and_processes(sandbox):
    import subprocess
    import sys

    with Sandbox(TEST_LIMITS, slots=2) as other:
        assert not set(other.uids) & set(sandbox.uids)
        code = ("from rsi.sandbox import Sandbox\nfrom conftest import TEST_LIMITS\n"
                "with Sandbox(TEST_LIMITS, slots=2) as sb:\n    r = sb.run('import os; print(os.getuid())')\n"
                "    print(sb.uids, r.stdout.strip())\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).parent).stdout.split("]")
        theirs = json.loads(out[0] + "]")
        assert not set(theirs) & (set(other.uids) | set(sandbox.uids)), (theirs, other.uids, sandbox.uids)
        assert len(set(theirs)) == 2
    with Sandbox(TEST_LIMITS, slots=1) as again:  # a closed pool's uids are free again
        assert again.uids[0] in set(other.uids) | set(theirs)


def test_seccomp_fails_closed_on_a_call_it_does_not_know(monkeypatch):
    from rsi.sandbox import isolation

    monkeypatch.setattr(isolation, "DENIED_SYSCALLS", (*isolation.DENIED_SYSCALLS, "no_such_syscall"))
    isolation.seccomp_program.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="does not know the system calls no_such_syscall"):
            isolation.seccomp_program()
    finally:
        isolation.seccomp_program.cache_clear()


def test_doctor_notes_a_memory_limit_on_rsis_cgroup_and_reserved_huge_pages(tmp_path, monkeypatch):
    from rsi.sandbox import cgroups

    (tmp_path / "memory.limit_in_bytes").write_text(str(2 << 30))
    monkeypatch.setattr(cgroups, "controller_dirs", lambda: {"memory": tmp_path})
    note = doctor_mod._memory_placement()
    assert note.ok and "limited to 2048 MB" in note.detail and "slots x sandbox memory_mb" in note.fix
    (tmp_path / "memory.limit_in_bytes").write_text(str(1 << 62))
    assert doctor_mod._memory_placement().fix == ""
    real = Path
    monkeypatch.setattr(doctor_mod, "Path", lambda p: tmp_path / "hp" if p == "/proc/sys/vm/nr_hugepages" else real(p))
    (tmp_path / "hp").write_text("16\n")
    assert "16 huge pages" in doctor_mod._huge_pages().detail and "nr_hugepages=0" in doctor_mod._huge_pages().fix
