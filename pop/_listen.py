"""Listen for MoQT like :func:`moqt.aio.serve`, optionally sharing the UDP port (SO_REUSEPORT).

``clutchcall pop --workers N`` runs N processes on one UDP port: each binds its
own socket with SO_REUSEPORT and the kernel spreads datagrams over them by a
hash of the 4-tuple, so all packets of one client (one source address and
port) reach the same worker and its QUIC connection state.  A client that
migrates to a new address would land on another worker, which does not know
its connection id: that is the price of kernel load balancing without a
connection-id-aware steering program, and our clients do not migrate.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from aioquic.asyncio.protocol import QuicStreamHandler
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from moqt.aio import MoqtConnection, MoqtProtocol, MoqtServer, SessionOptions

from ._retry import GuardedQuicServer, RetryMode

__all__ = ["bind_udp", "serve_socket"]

_BUFFER = 4 << 20


def bind_udp(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A bound, non-blocking UDP socket (IPv4 or IPv6 by the host's form)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, _BUFFER)
            except OSError:
                pass
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
    """Serve MoQT (raw QUIC + WebTransport, by ALPN) on an already bound UDP socket.

    Connections beyond ``max_connections`` are refused (QUIC CONNECTION_REFUSED)
    without creating a session, like :func:`moqt.aio.serve`; client addresses are
    validated with Retry as ``retry`` says (:class:`pop._retry.GuardedQuicServer`,
    handed to ``on_server``)."""
    protocols: list[MoqtProtocol] = []

    def forget(protocol: MoqtProtocol) -> None:
        if protocol in protocols:
            protocols.remove(protocol)

    def create_protocol(
        quic: QuicConnection, stream_handler: QuicStreamHandler | None = None
    ) -> MoqtProtocol:
        protocol = MoqtProtocol(
            quic,
            stream_handler,
            options=options,
            on_session=on_session,
            on_closed=forget,
            refuse=len(protocols) >= max_connections,
        )
        protocols.append(protocol)
        return protocol

    loop = asyncio.get_running_loop()
    _, server = await loop.create_datagram_endpoint(
        lambda: GuardedQuicServer(
            configuration=configuration,
            create_protocol=create_protocol,
            mode=retry,
            threshold=retry_threshold,
        ),
        sock=sock,
    )
    if on_server is not None:
        on_server(server)
    return MoqtServer(server, protocols)
