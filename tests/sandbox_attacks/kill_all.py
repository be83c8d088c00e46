"""kill -1: signal every process we may. Outside the sandbox there must be none."""
import os
import signal

try:
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass
