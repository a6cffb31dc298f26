"""Listen for MoQT with :func:`moqt.aio.serve` on a UDP socket bound here, which ``--workers``
share (SO_REUSEPORT), validating addresses with :class:`pop._retry.GuardedQuicServer`.

``clutchcall pop --workers N`` runs N processes on one UDP port: each binds its
own socket with SO_REUSEPORT and the kernel spreads datagrams over them by a
hash of the 4-tuple, so all packets of one client (one source address and
port) reach the same worker and its QUIC connection state.  A client that
migrates to a new address would land on another worker, which does not know
its connection id: that is the price of kernel load balancing without a
connection-id-aware steering program, and our clients do not migrate.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from aioquic.quic.configuration import QuicConfiguration

from moqt.aio import MoqtConnection, MoqtServer, SessionOptions, serve

from ._retry import GuardedQuicServer, RetryMode

__all__ = ["bind_udp", "serve_socket"]


def bind_udp(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A bound, non-blocking UDP socket (IPv4 or IPv6 by the host's form)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_socket(
    sock: socket.socket,
    *,
    configuration: QuicConfiguration,
    on_session: Callable[[MoqtConnection], None],
    options: SessionOptions,
    max_connections: int = 10_000,
    retry: RetryMode = "auto",
    retry_threshold: int = 64,
    on_server: Callable[[GuardedQuicServer], None] | None = None,
) -> MoqtServer:
    """Serve MoQT (raw QUIC + WebTransport, by ALPN) on an already bound UDP socket:
    :func:`moqt.aio.serve` (``max_connections`` refused with CONNECTION_REFUSED), with
    client addresses validated by Retry as ``retry`` says (the
    :class:`pop._retry.GuardedQuicServer` is handed to ``on_server``)."""

    def guarded(**kwargs: Any) -> GuardedQuicServer:
        server = GuardedQuicServer(mode=retry, threshold=retry_threshold, **kwargs)
        if on_server is not None:
            on_server(server)
        return server

    return await serve(
        sock=sock,
        configuration=configuration,
        on_session=on_session,
        options=options,
        max_connections=max_connections,
        quic_server=guarded,
    )
