"""Read what the host has and the sandbox must not: its files, keys, home, the project, /sys."""
import os

for path in ["/etc/shadow", "/etc/passwd", "/etc/hostname", "/root/.bashrc", "/root/.ssh", "/work",
             "/home", "/sys/kernel", "/sys/fs/cgroup", "/var/log", "/boot", "/opt", "/run"]:
    if os.path.exists(path):
        print("ESCAPED: can see", path)
