"""Memory bomb across processes: 8 children each touch 400 MB, under the 1 GB per-process limit.
Only the memory cgroup, which caps their sum, stops it."""
import os
import time

for _ in range(8):
    if os.fork() == 0:
        x = bytearray(400 << 20)
        time.sleep(5)
        os._exit(0)
for _ in range(8):
    os.wait()
