"""Unix sockets: the host's abstract socket and a filesystem socket path."""
import socket
import sys

name = sys.argv[2]
for addr in ["\0" + name, "/tmp/.X11-unix/X0", "/run/systemd/private", "/var/run/docker.sock"]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(addr)
        print("ESCAPED: connected to unix socket", repr(addr))
    except OSError:
        pass
