"""System calls a program never needs: each must fail (EPERM from the filter, ENOSYS past the reviewed table)."""
import ctypes
import errno
import platform

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
if platform.machine() == "x86_64":
    calls = {"modify_ldt": (154, 0, 0, 0), "io_setup": (206, 8, ctypes.addressof(ctypes.c_ulong(0))),
             "pidfd_getfd": (438, 0, 0, 0), "shmget": (29, 0, 4096, 0o1600), "msgget": (68, 0, 0o1600),
             "semget": (64, 0, 1, 0o1600), "mq_open": (240, b"/rsi", 0o100 | 2, 0o600, None),
             "sysinfo": (99, ctypes.addressof(ctypes.create_string_buffer(256))),
             "process_madvise": (440, 0, 0, 0, 0, 0), "personality": (135, 0x0040000),
             "syscall 500": (500,), "syscall 470": (470,)}
    for name, args in calls.items():
        ret = libc.syscall(*args)
        err = ctypes.get_errno()
        if ret >= 0:
            print(f"ESCAPED: {name} returned {ret}")
        elif err not in (errno.EPERM, errno.ENOSYS):
            print(f"ESCAPED: {name} failed with {errno.errorcode.get(err)}, not by the filter")
print("done")
