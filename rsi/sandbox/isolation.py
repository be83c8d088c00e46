"""The isolation chain one sandboxed program runs under, as a command line.

    sh (joins the slot's memory, pids and cpuacct cgroups as root, with an empty environment)
    └─ prlimit      RLIMIT_AS / CPU (SIGXCPU, then SIGKILL a second later) / FSIZE / NOFILE /
                    CORE for every process of the tree
       └─ setpriv   drops to the slot's own uid/gid, no groups, no capabilities, no_new_privs
          └─ bwrap  new user/pid/net/ipc/uts/cgroup namespaces, no nested user namespaces,
                    new session (no terminal), read-only /usr and /dev, throwaway size-capped /tmp
                    and /dev/shm,
                    the program read-only at /sandbox/prog.py, empty environment, a seccomp
                    filter, dies with its parent; the program is the namespace's pid 1, so when
                    it exits every process it left is killed (and bwrap leaves no orphaned
                    init behind for the host's pid 1 to reap)
             └─ /usr/bin/python3 -I -S -B -u prog.py   (isolated mode, no site-packages,
                                                     unbuffered: output printed before a kill is kept)

Privileges are dropped *before* bwrap starts, so nothing in the sandbox ever ran as root.
The seccomp filter (libseccomp through `pyseccomp`) refuses, with EPERM, the calls a program
needs only to attack the kernel or the host: ptrace, mount and namespace calls, bpf,
perf_event_open, keyrings, module and kexec loading, io_uring, TIOCSTI/TIOCLINUX, and every
socket family but AF_UNIX (the network namespace already has no route out; this also closes
AF_VSOCK, which namespaces do not isolate).
"""

from __future__ import annotations

import errno
import functools
import os

from rsi.sandbox.limits import Limits

PYTHON = "/usr/bin/python3"  # the interpreter inside the sandbox (only /usr is visible there)
PROGRAM = "/sandbox/prog.py"
UID_BASE = 61000  # slot i runs as uid/gid UID_BASE + i

DENIED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "vhangup",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "iopl", "ioperm",
)
TIOCSTI, TIOCLINUX = 0x5412, 0x541C
AF_UNIX = 1


@functools.cache
def seccomp_program() -> bytes:
    """The BPF seccomp program bwrap installs (built once per process)."""
    import pyseccomp as sc

    f = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            f.add_rule(sc.ERRNO(errno.EPERM), name)
        except (ValueError, RuntimeError):  # a name this libseccomp does not know on this architecture
            continue
    f.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socket", sc.Arg(0, sc.NE, AF_UNIX))
    f.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socketpair", sc.Arg(0, sc.NE, AF_UNIX))
    for request in (TIOCSTI, TIOCLINUX):
        f.add_rule(sc.ERRNO(errno.EPERM), "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    with open(os.memfd_create("rsi-seccomp", 0), "w+b") as tmp:
        f.export_bpf(tmp)  # writes through the file descriptor
        tmp.seek(0)
        return tmp.read()


def data_fd(data: bytes, name: str) -> int:
    """A memory file holding `data`, positioned at its start, for bwrap to read (inheritable)."""
    fd = os.memfd_create(name, 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def command(limits: Limits, uid: int, procs_files: list[str], seccomp_fd: int, program_fd: int,
            args: tuple[str, ...] = ()) -> list[str]:
    """The argv that runs the program read from `program_fd` under every limit in `limits`."""
    mb = 1 << 20
    join = " && ".join(f'echo $$ > "${i + 1}"' for i in range(len(procs_files)))
    return [
        "/bin/sh", "-c", f'{join} && shift {len(procs_files)} && exec "$@"', "rsi-sandbox", *procs_files,
        "/usr/bin/prlimit", f"--as={limits.address_space_mb * mb}", f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}",
        f"--fsize={limits.file_mb * mb}", f"--nofile={limits.open_files}", "--core=0", "--",
        "/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
        "--bounding-set=-all", "--no-new-privs", "--",
        "/usr/bin/bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
        "--new-session", "--as-pid-1", "--cap-drop", "ALL", "--hostname", "sandbox",
        "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin", "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
        "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
        "--size", str(limits.tmpfs_mb * mb), "--tmpfs", "/dev/shm",
        "--size", str(limits.tmpfs_mb * mb), "--tmpfs", "/tmp",
        "--ro-bind-data", str(program_fd), PROGRAM, "--remount-ro", "/", "--chdir", "/sandbox",
        "--clearenv", "--setenv", "PATH", "/usr/bin", "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8",
        "--seccomp", str(seccomp_fd),
        PYTHON, "-I", "-S", "-B", "-u", PROGRAM, *args,
    ]
