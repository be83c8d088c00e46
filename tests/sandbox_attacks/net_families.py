"""Every other socket family: netlink, packet, vsock (not namespaced), bluetooth, alg, can, xdp, ..."""
import socket

opened = []
for family in range(2, 46):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW, socket.SOCK_SEQPACKET):
        try:
            socket.socket(family, kind).close()
            opened.append((family, kind))
        except OSError:
            pass
if opened:
    print("ESCAPED: opened sockets", opened)
