"""TCP and UDP over IPv4 and IPv6: to the host's listener, to loopback, to the internet."""
import socket
import sys

port = int(sys.argv[1])
for family, addr in [(socket.AF_INET, ("127.0.0.1", port)), (socket.AF_INET, ("8.8.8.8", 53)),
                     (socket.AF_INET6, ("::1", port)), (socket.AF_INET6, ("2001:4860:4860::8888", 53))]:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        try:
            s = socket.socket(family, kind)
            s.settimeout(1)
            s.connect(addr)
            s.send(b"hello")
            print("ESCAPED: connected", family, kind, addr)
        except OSError:
            pass
