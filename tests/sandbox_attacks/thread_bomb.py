"""Thread bomb: start sleeping threads until refused. The pids cgroup counts threads too."""
import threading
import time

n = 0
try:
    while n < 100_000:
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        n += 1
except (RuntimeError, MemoryError):
    pass
print("threads", n)
