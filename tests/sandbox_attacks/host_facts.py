"""Host-wide facts a program could read (a covert channel, a source of nondeterminism): masked or unreadable."""
import resource

for name in ("loadavg", "meminfo", "uptime", "stat", "cmdline", "sys/kernel/random/boot_id", "vmstat"):
    try:
        text = open(f"/proc/{name}").read()
    except OSError:
        continue
    if text:
        print(f"ESCAPED: read /proc/{name}: {text[:40]!r}")
soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
if hard == resource.RLIM_INFINITY:
    print("ESCAPED: the stack's hard limit is unlimited")
try:
    resource.setrlimit(resource.RLIMIT_STACK, (hard + 1, hard + 1))
    print("ESCAPED: raised the stack limit")
except (ValueError, OSError):
    pass
print("done")
