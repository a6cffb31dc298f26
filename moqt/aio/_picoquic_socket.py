"""Give picoquic a UDP socket we bound: one address, and SO_REUSEPORT for ``--workers``.

picoquic's packet loop opens its own sockets on its network thread, on the
wildcard address of each family, without SO_REUSEPORT, and aiopquic 0.6.1 passes
it only a port and a family. So a picoquic server listened on every address of
the host, and no second process could share its port.

:func:`adopt_socket` keeps picoquic's loop and swaps the socket under it: the
server is started on a throwaway port in one family, its socket is found among
this process's file descriptors (the one bound to that port), and ``dup2``
points that descriptor at a socket bound here to the address asked for, with
SO_REUSEPORT when asked. picoquic reads and writes the same descriptor number
from then on, so every datagram goes through our socket; the throwaway one is
closed by the ``dup2``. The options picoquic had set on its socket (packet info,
ECN, GRO, buffer sizes, path MTU) are copied before ours is bound.

picoquic still believes its local port is the throwaway one (it labels the
local end of its paths with it); that only matters to a connection that
compares ports of its own address, which ours never do.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Final

__all__ = ["adopt_socket", "bind_server_socket"]

_SOL_UDP: Final = 17
_UDP_GRO: Final = 104
# Options picoquic may set on its sockets (Linux numbers), copied to ours when set.
_MIRRORED: Final = {
    socket.AF_INET: [
        (socket.IPPROTO_IP, 8),  # IP_PKTINFO
        (socket.IPPROTO_IP, 13),  # IP_RECVTOS (ECN)
        (socket.IPPROTO_IP, 10),  # IP_MTU_DISCOVER
        (_SOL_UDP, _UDP_GRO),
    ],
    socket.AF_INET6: [
        (socket.IPPROTO_IPV6, 26),  # IPV6_V6ONLY
        (socket.IPPROTO_IPV6, 49),  # IPV6_RECVPKTINFO
        (socket.IPPROTO_IPV6, 66),  # IPV6_RECVTCLASS (ECN)
        (socket.IPPROTO_IPV6, 23),  # IPV6_MTU_DISCOVER
        (socket.IPPROTO_IPV6, 62),  # IPV6_DONTFRAG
        (socket.IPPROTO_IP, 8),  # IP_PKTINFO (IPv4 on a dual-stack socket)
        (socket.IPPROTO_IP, 13),  # IP_RECVTOS
        (_SOL_UDP, _UDP_GRO),
    ],
}


def family_of(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_server_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A UDP socket bound to ``(host, port)`` (``OSError`` when taken), not yet picoquic's."""
    sock = socket.socket(family_of(host), socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if sock.family == socket.AF_INET6 and host in ("::", ""):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too, as before
        sock.bind((host or "::", port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"UDP {host}:{port} is not free for picoquic: {exc}") from exc
    except BaseException:
        sock.close()
        raise
    return sock


def _inodes(port: int) -> set[str]:
    """Socket inodes of this network namespace bound to UDP ``port`` (any address)."""
    found: set[str] = set()
    for table in ("/proc/self/net/udp", "/proc/self/net/udp6"):
        try:
            with open(table) as lines:
                next(lines, None)
                for line in lines:
                    fields = line.split()
                    if len(fields) > 9 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        found.add(fields[9])
        except FileNotFoundError:
            continue
    return found


def _descriptors(port: int) -> list[int]:
    """This process's descriptors of the sockets bound to UDP ``port``."""
    inodes = _inodes(port)
    fds: list[int] = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            fds.append(int(name))
    return fds


_OPEN_WITHIN: Final = 5.0


async def picoquic_descriptor(port: int) -> int:
    """The one descriptor picoquic's network thread opened on ``port`` (it binds it
    shortly after the server starts)."""
    deadline = time.monotonic() + _OPEN_WITHIN
    while True:
        fds = _descriptors(port)
        if len(fds) == 1:
            return fds[0]
        if len(fds) > 1:
            raise OSError(f"picoquic opened {len(fds)} sockets on UDP port {port}, expected 1")
        if time.monotonic() > deadline:
            raise OSError(f"picoquic opened no socket on UDP port {port} within {_OPEN_WITHIN} s")
        await asyncio.sleep(0.005)


async def adopt_socket(picoquic_port: int, sock: socket.socket) -> None:
    """Make the socket picoquic opened on ``picoquic_port`` be ``sock`` (see the module
    docstring); ``sock`` is closed here, its descriptor duplicated into picoquic's."""
    fd = await picoquic_descriptor(picoquic_port)
    with socket.socket(fileno=os.dup(fd)) as theirs:
        if theirs.family != sock.family:
            raise OSError(f"picoquic's socket is {theirs.family!r}, ours {sock.family!r}")
        for level, option in _MIRRORED[sock.family]:
            try:
                value = theirs.getsockopt(level, option)
                if value != sock.getsockopt(level, option):
                    sock.setsockopt(level, option, value)
            except OSError:
                continue
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            # Linux reports twice what was set; ask for what picoquic asked for.
            wanted = theirs.getsockopt(socket.SOL_SOCKET, option) // 2
            if sock.getsockopt(socket.SOL_SOCKET, option) // 2 < wanted:
                sock.setsockopt(socket.SOL_SOCKET, option, wanted)
        sock.setblocking(theirs.getblocking())
    os.dup2(sock.fileno(), fd)
    sock.close()
