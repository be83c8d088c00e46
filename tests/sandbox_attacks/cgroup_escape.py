"""Leave the slot's cgroup or raise its limits: cgroupfs must not be reachable."""
import glob
import os

for path in [*glob.glob("/sys/fs/cgroup/**/cgroup.procs", recursive=True), "/sys/fs/cgroup/cgroup.procs"]:
    try:
        open(path, "w").write(str(os.getpid()))
        print("ESCAPED: moved into", path)
    except OSError:
        pass
print(open("/proc/self/cgroup").read().strip().splitlines()[0])
