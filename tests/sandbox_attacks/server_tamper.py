"""Reach the slot's waiting server (pid 1 here, same uid): its memory, its descriptors, signals, its files."""
import os
import signal

for path in ("/proc/1/mem", "/proc/1/environ", "/proc/1/fd/3", "/proc/1/maps"):
    try:
        with open(path, "rb") as f:
            f.read(1)
        print(f"ESCAPED: read {path}")
    except OSError:
        pass
try:
    os.listdir("/proc/1/fd")
    print("ESCAPED: listed the server's descriptors")
except OSError:
    pass
for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):
    try:
        os.kill(1, sig)
    except OSError:
        pass
for fd in range(3, 64):
    try:
        os.fstat(fd)
        print(f"ESCAPED: descriptor {fd} is open")
    except OSError:
        pass
try:
    open("/sandbox/server.py", "a")
    print("ESCAPED: the server's file is writable")
except OSError:
    pass
print("done")
