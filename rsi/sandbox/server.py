"""The program each sandbox slot keeps running inside its sandbox: it forks one child per job.

This file is not imported by rsi: the slot (`rsi.sandbox.runner.Slot`) starts it once, as the
sandbox's pid 1 under the full isolation chain (`rsi.sandbox.isolation.command`), and then hands
it programs over a unix socket. Starting bubblewrap and Python costs about 30 ms; a fork of this
small, already started interpreter costs about 1 ms, with the same isolation, because every
program still runs inside the slot's namespaces, seccomp filter, cgroups and uid.

For each job the host sends a JSON header (argv, limits) and four descriptors: a memory file
holding the program, the read end of its stdin, the write ends of its stdout and stderr. This
server then
1. empties /tmp and /dev/shm (the previous run's files; its processes were killed by the host),
2. forks; the child drops the server's state (closes every other descriptor, makes itself
   dumpable again, sets its own resource limits: CPU seconds, address space, file size, open
   files, stack), and runs the program as `__main__`, exactly as `python3 -I -S -B -u prog.py`,
3. waits for that child, reaping anything else orphaned to it (it is the namespace's init),
4. sends back how the child ended, told apart exactly: {"exit": status} or {"signal": number},
5. and, once the host has killed whatever the program left running ("reap"), reaps every last
   process and says "clean": when a run returns, nothing of it is left, not even a zombie.

The server makes itself non-dumpable, so a program running as the same uid can neither read nor
write its memory or descriptors through /proc; signals from inside the namespace cannot reach an
init process without a handler, and it installs none. It imports nothing a program could share
state through (no `random`, no hash-seeded state a program can read: proposals run twice are
judged by `rsi.tasks.selfplay` on their structure as well).
"""

import ctypes
import json
import os
import resource
import socket
import stat
import sys
import types

PR_SET_DUMPABLE = 4
PROGRAM = "/sandbox/prog.py"
SCRATCH = ("/tmp", "/dev/shm")
_libc = ctypes.CDLL(None, use_errno=True)


def _wipe(top):
    """Remove everything under `top` (files the previous program left), whatever their modes."""
    try:
        entries = list(os.scandir(top))
    except OSError:
        return
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                os.chmod(e.path, stat.S_IRWXU)
                _wipe(e.path)
                os.rmdir(e.path)
            else:
                os.unlink(e.path)
        except OSError:
            pass


def _status(raw, usage):
    """How the program ended, and its own CPU seconds: the count RLIMIT_CPU was checked against."""
    cpu = {"cpu_s": usage.ru_utime + usage.ru_stime}
    if os.WIFSIGNALED(raw):
        return {"signal": os.WTERMSIG(raw)} | cpu
    return {"exit": os.waitstatus_to_exitcode(raw)} | cpu


def serve(ctl):
    """Run jobs until the host closes the socket; return (job, fds) in each forked child."""
    ctl.send(b'{"ready": true}')
    while True:
        msg, fds, _, _ = socket.recv_fds(ctl, 1 << 16, 4)
        if not msg:
            os._exit(0)
        job = json.loads(msg)
        for top in SCRATCH:
            _wipe(top)
        pid = os.fork()
        if pid == 0:
            return job, fds
        for fd in fds:
            os.close(fd)
        while True:
            try:
                done, raw, usage = os.wait4(-1, 0)
            except ChildProcessError:
                break
            if done == pid:
                ctl.send(json.dumps(_status(raw, usage)).encode())
                break
        if ctl.recv(16) != b"reap":  # the host has killed what the program left: reap it all
            os._exit(0)
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
        ctl.send(b"clean")


def _limit(name, soft, hard=None):
    resource.setrlimit(name, (soft, soft if hard is None else hard))


def child(job, fds):
    """Become the program: descriptors 0-2, no others, own limits, `__main__`."""
    prog, stdin, stdout, stderr = fds
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
    with os.fdopen(prog, "rb", closefd=True) as f:
        source = f.read()
    os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    lim, mb = job["limits"], 1 << 20
    _limit(resource.RLIMIT_CPU, lim["cpu_s"], lim["cpu_s"] + 1)
    _limit(resource.RLIMIT_AS, lim["address_space_mb"] * mb)
    _limit(resource.RLIMIT_FSIZE, lim["file_mb"] * mb)
    _limit(resource.RLIMIT_NOFILE, lim["open_files"])
    _limit(resource.RLIMIT_STACK, lim["stack_mb"] * mb)
    _limit(resource.RLIMIT_CORE, 0)
    sys.argv = [PROGRAM, *job["args"]]
    main = types.ModuleType("__main__")
    main.__file__ = PROGRAM
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    try:
        exec(compile(source, PROGRAM, "exec"), main.__dict__)
        code = 0
    except SystemExit as e:
        code = _exit_code(e.code)
    except BaseException as e:  # as the interpreter reports it, less this file's frame
        _report(e.with_traceback(e.__traceback__.tb_next), source)
        code = 1
    _finish(code)


def _exit_code(value):
    """The status `raise SystemExit(value)` ends a script with."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _report(e, source):
    if sys.excepthook is not sys.__excepthook__:
        sys.excepthook(type(e), e, e.__traceback__)
        return
    import linecache  # tracebacks show the program's lines, as they would for a file
    import traceback

    text = source.decode("utf-8", "replace")
    linecache.cache[PROGRAM] = (len(text), None, text.splitlines(True), PROGRAM)
    traceback.print_exception(e)


def _finish(code):
    """What the interpreter does at exit that a program can see (its threads joined, its atexit
    handlers run, its output flushed), then exit without tearing down the server's copied heap
    (which costs more than the fork)."""
    try:
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()
        import atexit

        atexit._run_exitfuncs()
    except SystemExit as e:
        code = _exit_code(e.code)
    except BaseException as e:
        _report(e, b"")
        code = code or 1
    finally:
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except BaseException:
                pass
        os._exit(code)


if __name__ == "__main__":
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    child(*serve(socket.socket(fileno=int(sys.argv[1]))))
