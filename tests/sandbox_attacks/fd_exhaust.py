"""Open files until refused: the per-process descriptor limit stops it."""
import os

fds = []
try:
    while len(fds) < 100_000:
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError:
    pass
print("fds", len(fds))
