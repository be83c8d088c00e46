"""Symlinks from the writable /tmp to files outside, then read and write through them."""
import os

for target in ["/etc/shadow", "/root/.bashrc", "/work", "/proc/1/root/etc/passwd", "/proc/1/cwd"]:
    link = "/tmp/link"
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(target, link)
    try:
        data = open(link, "rb").read(16)
        if target.startswith(("/etc", "/root", "/work")):
            print("ESCAPED: read", target, "through a symlink", data)
    except OSError:
        pass
