"""Change the machine: the clock, the hostname, the console."""
import ctypes
import time

libc = ctypes.CDLL(None, use_errno=True)
try:
    time.clock_settime(time.CLOCK_REALTIME, 0)
    print("ESCAPED: set the clock")
except OSError:
    pass
if libc.sethostname(b"x", 1) == 0:
    print("ESCAPED: set the hostname")
try:
    open("/dev/console", "w").write("x")
    print("ESCAPED: wrote to the console")
except OSError:
    pass
