"""Look for the host's environment: our own, the sandbox's pid 1, every process we can see."""
import os
import sys

canary = sys.argv[3]
found = [k for k, v in os.environ.items() if canary in v]
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            if canary.encode() in open(f"/proc/{pid}/environ", "rb").read():
                found.append(pid)
        except OSError:
            pass
if found:
    print("ESCAPED: host environment in", found)
print("env keys", sorted(os.environ))
