"""What this machine can isolate: the checks behind `rsi doctor` and the pool's fail-closed start.

Each check says what it found and, when it fails, what to install or change. `require()` runs
the checks a sandbox cannot start without and raises `SandboxUnavailable` naming every failure;
`rsi doctor` also runs a program end to end and shows everything.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rsi.errors import SandboxUnavailable
from rsi.sandbox.isolation import PYTHON


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _binary(name: str, package: str) -> Check:
    path = shutil.which(name, path="/usr/bin:/bin")
    if path is None:
        return Check(name, False, f"{name} not found in /usr/bin",
                     f"install it: apt-get install -y {package} (Debian/Ubuntu) or dnf install -y {package}")
    version = ""
    if name == "bwrap":
        version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.strip()
        if version and tuple(int(x) for x in version.split()[-1].split(".")[:2]) < (0, 8):
            return Check(name, False, f"{version} is too old (--disable-userns needs 0.8)",
                         "install bubblewrap 0.8 or newer")
    return Check(name, True, f"{path} {version}".strip())


def _root() -> Check:
    if os.geteuid() == 0:
        return Check("root", True, "running as root: each slot runs as its own unprivileged uid")
    return Check("root", False, f"running as uid {os.geteuid()}",
                 "run rsi as root in a VM or container: root is needed to give every slot its own uid "
                 "and to manage the memory and pids cgroups (privileges are dropped before bwrap starts)")


def _cgroups() -> Check:
    from rsi.sandbox.cgroups import CgroupError, controller_dirs

    try:
        dirs = controller_dirs()
    except (CgroupError, OSError) as e:
        return Check("cgroups", False, str(e), "run on a machine with cgroup v1 memory, pids and cpuacct controllers")
    unwritable = [str(d) for d in dirs.values() if not os.access(d, os.W_OK)]
    if unwritable:
        return Check("cgroups", False, f"cannot create cgroups in {', '.join(unwritable)}",
                     "run as root with a writable /sys/fs/cgroup")
    return Check("cgroups", True, "memory, pids, cpuacct (v1): " + ", ".join(str(d) for d in dirs.values()))


def _userns() -> Check:
    f = Path("/proc/sys/user/max_user_namespaces")
    n = int(f.read_text()) if f.exists() else 0
    if n > 0:
        return Check("user namespaces", True, f"max_user_namespaces = {n}")
    return Check("user namespaces", False, "user namespaces are disabled",
                 "sysctl -w user.max_user_namespaces=10000")


def _seccomp() -> Check:
    try:
        from rsi.sandbox.isolation import seccomp_program

        size = len(seccomp_program())
    except Exception as e:  # pyseccomp missing, or libseccomp.so.2 not loadable
        return Check("seccomp", False, f"cannot build the seccomp filter: {type(e).__name__}: {e}",
                     "install libseccomp: apt-get install -y libseccomp2; pip install pyseccomp")
    return Check("seccomp", True, f"filter of {size // 8} BPF instructions (libseccomp)")


def _memory_placement() -> Check:
    """Where the slots' memory is charged: their cgroups sit under rsi's own, so a limit on rsi's
    cgroup also bounds the sandboxes, and sandbox memory counts against it."""
    from rsi.sandbox.cgroups import CgroupError, controller_dirs

    try:
        own = controller_dirs()["memory"]
        limit = int((own / "memory.limit_in_bytes").read_text())
    except (CgroupError, OSError, ValueError):
        return Check("memory placement", True, "rsi's memory cgroup cannot be read; nothing to report")
    if limit >= 1 << 60:
        return Check("memory placement", True, f"slot cgroups sit under rsi's own ({own}), which has no memory limit")
    return Check("memory placement", True, f"slot cgroups sit under rsi's own ({own}), limited to {limit >> 20} MB: "
                 "sandbox memory counts against rsi's, and a memory-hungry program pushes rsi toward that limit",
                 "give rsi's cgroup room for (slots x sandbox memory_mb) beyond what rsi itself needs, or run "
                 "rsi in a cgroup without a memory limit")


def _huge_pages() -> Check:
    """Reserved huge pages (hugetlbfs) are not charged to a v1 memory cgroup."""
    f = Path("/proc/sys/vm/nr_hugepages")
    n = int(f.read_text()) if f.exists() else 0
    if n == 0:
        return Check("huge pages", True, "no huge pages reserved (nr_hugepages = 0): a program cannot take any; "
                     "transparent huge pages count toward the memory cgroup")
    return Check("huge pages", True, f"{n} huge pages are reserved; a sandboxed program may map them (MAP_HUGETLB) "
                 "outside its memory cgroup's cap", "sysctl -w vm.nr_hugepages=0 on machines that run model code, "
                 "or cap them with the hugetlb cgroup")


def _python() -> Check:
    if Path(PYTHON).is_file():
        return Check("python", True, f"{PYTHON} (the interpreter inside the sandbox)")
    return Check("python", False, f"{PYTHON} not found", "install it: apt-get install -y python3-minimal")


def static_checks() -> list[Check]:
    """Everything a sandbox needs before it can start."""
    if platform.system() != "Linux":
        return [Check("linux", False, f"this is {platform.system()}", "the sandbox needs Linux namespaces")]
    return [_binary("bwrap", "bubblewrap"), _binary("setpriv", "util-linux"), _binary("prlimit", "util-linux"),
            _python(), _root(), _userns(), _cgroups(), _seccomp(), _memory_placement(), _huge_pages()]


@functools.cache
def _failures() -> tuple[Check, ...]:
    return tuple(c for c in static_checks() if not c.ok)


def require() -> None:
    """Raise SandboxUnavailable (listing each failed check and its fix) unless the sandbox can start."""
    failed = _failures()
    if failed:
        lines = "\n".join(f"  - {c.name}: {c.detail}. Fix: {c.fix}" for c in failed)
        raise SandboxUnavailable("code tasks need the sandbox, and it cannot start on this machine:\n"
                                 f"{lines}\nRun `rsi doctor` to see every check.")
