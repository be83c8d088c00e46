"""Push characters into a terminal's input (TIOCSTI), through every descriptor and /dev/tty."""
import fcntl
import os
import termios

fds = [0, 1, 2]
try:
    fds.append(os.open("/dev/tty", os.O_RDWR))
except OSError:
    pass
for fd in fds:
    for request in (termios.TIOCSTI, 0x541C):
        try:
            fcntl.ioctl(fd, request, b"x")
            print("ESCAPED: ioctl", hex(request), "on fd", fd)
        except OSError:
            pass
