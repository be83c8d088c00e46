"""Become root or keep a capability: setuid(0), setgid(0), the capability sets."""
import os

for call in (lambda: os.setuid(0), lambda: os.setgid(0), lambda: os.setgroups([0])):
    try:
        call()
        print("ESCAPED: privilege call succeeded")
    except OSError:
        pass
status = open("/proc/self/status").read()
for line in status.splitlines():
    if line.startswith(("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb")) and int(line.split()[1], 16):
        print("ESCAPED:", line)
    if line.startswith("NoNewPrivs") and line.split()[1] != "1":
        print("ESCAPED: no_new_privs is off")
    if line.startswith("Uid") and "0" in line.split()[1:]:
        print("ESCAPED: runs as uid 0")
