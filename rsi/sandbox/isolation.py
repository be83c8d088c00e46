"""The isolation chain a slot's server (`rsi.sandbox.server`) runs under, as a command line.

    sh (joins the slot's memory, pids and cpuacct cgroups as root, with an empty environment)
    └─ prlimit      RLIMIT_AS / FSIZE / NOFILE / STACK (soft = hard) / CORE for every process
       └─ setpriv   drops to the slot's own uid/gid, no groups, no capabilities, no_new_privs
          └─ bwrap  new user/pid/net/ipc/uts/cgroup namespaces, no nested user namespaces,
                    new session (no terminal), read-only /usr and /dev, throwaway size-capped /tmp
                    and /dev/shm, host-wide /proc facts masked (`MASKED_PROC`: load, memory,
                    uptime, CPU and disk counters, boot id, kernel command line), the server
                    read-only at /sandbox/server.py, empty environment, a seccomp filter, dies
                    with its parent; the server is the namespace's pid 1, so when it ends every
                    process in the sandbox is killed
             └─ /usr/bin/python3 -I -S -B -u server.py   (isolated mode, no site-packages, unbuffered)
                └─ one forked child per program, which sets its own RLIMIT_CPU (SIGXCPU, then
                   SIGKILL a second later) and the other limits of its job before it runs

Privileges are dropped *before* bwrap starts, so nothing in the sandbox ever ran as root.
The seccomp filter (libseccomp through `pyseccomp`) fails closed: it is built from `DENIED_SYSCALLS`
and refuses to build (so the sandbox refuses to start) if libseccomp does not know one of them.
With EPERM it refuses the calls a program needs only to attack the kernel or the host, or to
reach outside its run: ptrace and process_vm_*, pidfd_getfd, kcmp, mount and namespace calls,
bpf, perf_event_open, userfaultfd, io_uring, Linux AIO, modify_ldt, keyrings, module and kexec
loading, sysinfo (host-wide load and memory), SysV IPC and POSIX message queues (state that
would outlive a run in the slot's IPC namespace), TIOCSTI/TIOCLINUX, and every socket family
but AF_UNIX (the network namespace already has no route out; this also closes AF_VSOCK, which
namespaces do not isolate). Any call numbered above `MAX_REVIEWED_SYSCALL` (added to the kernel
after this list was reviewed) fails with ENOSYS, as on an older kernel, which is what glibc and
Python already expect.
"""

from __future__ import annotations

import errno
import functools
import os

from rsi.sandbox.limits import Limits

PYTHON = "/usr/bin/python3"  # the interpreter inside the sandbox (only /usr is visible there)
SERVER = "/sandbox/server.py"

DENIED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents", "modify_ldt",
    "keyctl", "add_key", "request_key",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "vhangup", "personality", "sysinfo",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "iopl", "ioperm",
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl",
    "msgget", "msgsnd", "msgrcv", "msgctl",
    "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
)
MAX_REVIEWED_SYSCALL = 469  # x86-64 numbering; newer calls get ENOSYS (`seccomp_program`)
MASKED_PROC = ("loadavg", "meminfo", "uptime", "stat", "vmstat", "diskstats", "zoneinfo", "interrupts",
               "cmdline", "sys/kernel/random/boot_id", "swaps")
TIOCSTI, TIOCLINUX = 0x5412, 0x541C
AF_UNIX = 1


@functools.cache
def seccomp_program() -> bytes:
    """The BPF seccomp program bwrap installs (built once per process)."""
    import pyseccomp as sc

    f = sc.SyscallFilter(defaction=sc.ALLOW)
    unknown = []
    for name in DENIED_SYSCALLS:
        try:
            f.add_rule(sc.ERRNO(errno.EPERM), name)
        except (ValueError, RuntimeError, OSError):  # a name this libseccomp does not know: fail closed
            unknown.append(name)
    if unknown:
        raise RuntimeError(f"libseccomp does not know the system calls {', '.join(unknown)}: the filter would "
                           "let them through; install a newer libseccomp (apt-get install -y libseccomp2)")
    if os.uname().machine == "x86_64":
        for nr in range(MAX_REVIEWED_SYSCALL + 1, MAX_REVIEWED_SYSCALL + 64):
            f.add_rule(sc.ERRNO(errno.ENOSYS), nr)
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


def command(limits: Limits, uid: int, procs_files: list[str], seccomp_fd: int, server_fd: int,
            args: tuple[str, ...] = ()) -> list[str]:
    """The argv that runs the server read from `server_fd` (with `args`) under every limit in `limits`."""
    mb = 1 << 20
    join = " && ".join(f'echo $$ > "${i + 1}"' for i in range(len(procs_files)))
    return [
        "/bin/sh", "-c", f'{join} && shift {len(procs_files)} && exec "$@"', "rsi-sandbox", *procs_files,
        "/usr/bin/prlimit", f"--as={limits.address_space_mb * mb}", f"--stack={limits.stack_mb * mb}",
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
        *(a for name in MASKED_PROC if os.path.exists(f"/proc/{name}")
          for a in ("--ro-bind", "/dev/null", f"/proc/{name}")),
        "--ro-bind-data", str(server_fd), SERVER, "--remount-ro", "/", "--chdir", "/sandbox",
        "--clearenv", "--setenv", "PATH", "/usr/bin", "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8",
        "--seccomp", str(seccomp_fd),
        PYTHON, "-I", "-S", "-B", "-u", SERVER, *args,
    ]
