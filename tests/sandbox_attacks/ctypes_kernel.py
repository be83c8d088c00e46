"""Raw syscalls at the kernel: bpf, perf_event_open, keyctl, init_module, kexec, reboot,
io_uring_setup, userfaultfd, swapon, syslog, iopl (x86-64 numbers)."""
import ctypes
import platform

if platform.machine() != "x86_64":
    raise SystemExit(0)
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(256)
calls = {"bpf": (321, 0, buf, 128), "perf_event_open": (298, buf, 0, -1, -1, 0), "keyctl": (250, 0, 0, 0, 0),
         "init_module": (175, buf, 16, b""), "kexec_load": (246, 0, 0, 0, 0), "reboot": (169, 0, 0, 0, 0),
         "io_uring_setup": (425, 8, buf), "userfaultfd": (323, 0), "swapon": (167, b"/tmp/x", 0),
         "syslog": (103, 3, buf, 256), "iopl": (172, 3), "add_key": (248, b"user", b"k", b"v", 1, -2)}
for name, (nr, *args) in calls.items():
    if libc.syscall(nr, *args) >= 0:
        print("ESCAPED: syscall", name)
