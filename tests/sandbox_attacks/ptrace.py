"""ptrace a child (and pid 1), and read another process's memory."""
import ctypes
import os
import time

libc = ctypes.CDLL(None, use_errno=True)
child = os.fork()
if child == 0:
    time.sleep(5)
    os._exit(0)
PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206
for pid in (child, 1):
    for req in (PTRACE_ATTACH, PTRACE_SEIZE):
        if libc.ptrace(req, pid, 0, 0) == 0:
            print("ESCAPED: ptrace", req, pid)
if libc.ptrace(0, 0, 0, 0) == 0:  # PTRACE_TRACEME
    print("ESCAPED: ptrace traceme")
try:
    open(f"/proc/{child}/mem", "rb").read(1)
    print("ESCAPED: read child's memory")
except OSError:
    pass
os.kill(child, 9)
