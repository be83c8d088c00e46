"""Raw syscalls through ctypes: unshare, setns, mount, umount, pivot_root, chroot, sethostname."""
import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
for flags in (CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWUSER | CLONE_NEWNS):
    if libc.unshare(flags) == 0:
        print("ESCAPED: unshare", hex(flags))
fd = os.open("/proc/self/ns/net", os.O_RDONLY)
if libc.setns(fd, 0) == 0:
    print("ESCAPED: setns")
if libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) == 0:
    print("ESCAPED: mount tmpfs")
if libc.mount(b"proc", b"/tmp", b"proc", 0, None) == 0:
    print("ESCAPED: mount proc")
if libc.umount2(b"/usr", 2) == 0:
    print("ESCAPED: umount /usr")
if libc.chroot(b"/tmp") == 0:
    print("ESCAPED: chroot")
if libc.sethostname(b"pwned", 5) == 0:
    print("ESCAPED: sethostname")
