"""Write anywhere but /tmp and /dev/shm: system files, the program itself, /proc knobs, /dev, the
host's directories."""
import os

targets = ["/usr/rsi-escape", "/usr/bin/python3", "/etc/rsi-escape", "/rsi-escape", "/sandbox/prog.py",
           "/sandbox/rsi-escape", "/proc/sys/kernel/hostname", "/proc/sysrq-trigger", "/dev/rsi-escape",
           "/var/tmp/rsi-escape", "/root/rsi-escape", "/work/rsi-escape", "/dev/console"]
for t in targets:
    try:
        with open(t, "a") as f:
            f.write("x")
        print("ESCAPED: wrote", t)
    except OSError:
        pass
for d in ["/usr/rsi-escape-dir", "/rsi-escape-dir"]:
    try:
        os.mkdir(d)
        print("ESCAPED: made", d)
    except OSError:
        pass
