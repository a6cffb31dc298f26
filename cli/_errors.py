"""CLI error messages that say what to do: which address is busy, which certificate to trust.

The commands catch the error where they print it and call these; none of them lets a
traceback or a bare errno reach the user.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from typing import Literal

__all__ = ["Listen", "busy_address_message", "is_busy", "untrusted_certificate_message"]

# (flag, HOST:PORT, protocol, what listens there)
Listen = tuple[str, str, Literal["tcp", "udp"], str]


def is_busy(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE


def _in_use(address: str, proto: Literal["tcp", "udp"]) -> bool:
    from mesh.settings import parse_hostport

    try:
        host, port = parse_hostport(address)
    except ValueError:
        return False
    if port == 0:
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(family, kind) as probe:
        if proto == "tcp":  # a socket in TIME_WAIT is not "in use"
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def busy_address_message(command: str, listens: Sequence[Listen]) -> str:
    """After an EADDRINUSE (our own sockets are closed by then): which of the addresses
    this command listens on another program holds, and what to do about it."""
    busy = [(flag, addr, proto, what) for flag, addr, proto, what in listens
            if addr and _in_use(addr, proto)]  # fmt: skip
    if not busy:
        tried = ", ".join(f"{addr} ({flag})" for flag, addr, _, _ in listens if addr)
        return (
            f"clutchcall {command}: an address is already in use (one of {tried}); "
            "stop the program holding it or choose other addresses"
        )
    lines = [
        f"clutchcall {command}: {addr} ({proto.upper()}, {what}) is already in use by another "
        f"program: stop it, or listen elsewhere with {flag} HOST:PORT (port 0 picks a free one)"
        for flag, addr, proto, what in busy
    ]
    return "\n".join(lines)


def untrusted_certificate_message(command: str, url: str) -> str:
    return (
        f"clutchcall {command}: the server at {url} presented a certificate this machine does "
        "not trust (self-signed?): set CLUTCHCALL_CAFILE=<its certificate PEM> (clutchcall up "
        "prints the path), or give the node a certificate from a CA you trust"
    )
