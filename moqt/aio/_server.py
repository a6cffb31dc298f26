"""Serve MoQT on one UDP port: raw QUIC (``moqt-16``, ``moq-00``) and WebTransport (``h3``)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from aioquic.asyncio.protocol import QuicStreamHandler
from aioquic.asyncio.server import QuicServer
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from ..version import ALPN_DRAFT_14, ALPN_DRAFT_16
from ._client import QUIC_STACKS, picoquic_module
from ._connection import MoqtConnection, SessionOptions
from ._protocol import ALPN_H3, MoqtProtocol

__all__ = [
    "DEFAULT_SERVER_ALPNS",
    "Listener",
    "MoqtServer",
    "listen",
    "serve",
    "server_configuration",
]

# Preference order: the server picks the first of these the client offers.
DEFAULT_SERVER_ALPNS = (ALPN_DRAFT_16, ALPN_DRAFT_14, ALPN_H3)


def server_configuration(
    certificate: Path,
    private_key: Path,
    *,
    alpns: Sequence[str] = DEFAULT_SERVER_ALPNS,
    idle_timeout: float = 30.0,
    max_data: int = 32 << 20,
    max_stream_data: int = 8 << 20,
) -> QuicConfiguration:
    config = QuicConfiguration(
        is_client=False,
        alpn_protocols=list(alpns),
        idle_timeout=idle_timeout,
        max_data=max_data,
        max_stream_data=max_stream_data,
        max_datagram_frame_size=65536,
    )
    config.load_cert_chain(certificate, private_key)
    return config


class MoqtServer:
    """A listening MoQT endpoint; :meth:`close` stops it and aborts its connections."""

    def __init__(self, server: QuicServer, protocols: list[MoqtProtocol]) -> None:
        self._server = server
        self._protocols = protocols

    @property
    def address(self) -> tuple[str, int]:
        transport = self._server._transport
        assert transport is not None
        name = transport.get_extra_info("sockname")
        return str(name[0]), int(name[1])

    @property
    def connections(self) -> list[MoqtConnection]:
        return [p.moqt for p in self._protocols if p.moqt is not None and not p.moqt.is_closed]

    def close(self) -> None:
        for protocol in list(self._protocols):
            protocol.abort()
        self._protocols.clear()
        self._server.close()


async def serve(
    host: str = "",
    port: int = 0,
    *,
    configuration: QuicConfiguration,
    on_session: Callable[[MoqtConnection], None],
    options: SessionOptions | None = None,
    max_connections: int = 10_000,
    sock: socket.socket | None = None,
    quic_server: Callable[..., QuicServer] = QuicServer,
) -> MoqtServer:
    """Listen on ``host:port`` (port 0 picks a free one; see :attr:`MoqtServer.address`),
    or on ``sock``, a UDP socket bound already (e.g. with SO_REUSEPORT, shared by workers).

    ``on_session`` is called synchronously for every new MoQT session, before
    any of its bytes are processed: install an event handler there or start a
    task that reads its events. Connections beyond ``max_connections`` are
    refused (QUIC CONNECTION_REFUSED) without creating a session. ``quic_server``
    makes the datagram endpoint (``configuration=``, ``create_protocol=``): a
    :class:`QuicServer` subclass may validate addresses its own way.
    """
    opts = options or SessionOptions()
    protocols: list[MoqtProtocol] = []

    def create_protocol(
        quic: QuicConnection, stream_handler: QuicStreamHandler | None = None
    ) -> MoqtProtocol:
        protocol = MoqtProtocol(
            quic,
            stream_handler,
            options=opts,
            on_session=on_session,
            on_closed=_forget,
            refuse=len(protocols) >= max_connections,
        )
        protocols.append(protocol)
        return protocol

    def _forget(protocol: MoqtProtocol) -> None:
        if protocol in protocols:
            protocols.remove(protocol)

    endpoint = {"sock": sock} if sock is not None else {"local_addr": (host, port)}
    transport, server = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: quic_server(configuration=configuration, create_protocol=create_protocol),
        **endpoint,
    )
    udp = transport.get_extra_info("socket")
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            udp.setsockopt(socket.SOL_SOCKET, option, 4 << 20)
        except OSError:
            pass
    return MoqtServer(server, protocols)


class Listener(Protocol):
    """What a node needs of a listening endpoint, whichever QUIC stack runs it."""

    @property
    def address(self) -> tuple[str, int]: ...

    @property
    def connections(self) -> list[MoqtConnection]: ...

    def close(self) -> None: ...


async def listen(
    host: str,
    port: int,
    *,
    certificate: Path,
    private_key: Path,
    on_session: Callable[[MoqtConnection], None],
    options: SessionOptions | None = None,
    stack: str = "aioquic",
    max_connections: int = 10_000,
    stream_buffer: int | None = None,
    congestion_control: str | None = None,
    send_quantum: float | None = None,
    busy_connections: int | None = None,
    busy_send_quantum: float | None = None,
) -> Listener:
    """Serve MoQT on ``stack`` (:data:`QUIC_STACKS`): raw QUIC and WebTransport on one
    port, with :func:`serve` (``aioquic``) or :func:`serve_picoquic` (``picoquic``,
    packet and HTTP/3 work on a C thread; ``stream_buffer``: its per-stream send ring,
    ``congestion_control``: its controller, ``send_quantum``: its BBR's burst, and
    ``busy_send_quantum`` from ``busy_connections`` connections on; None for their
    defaults)."""
    if stack == "aioquic":
        return await serve(
            host,
            port,
            configuration=server_configuration(certificate, private_key),
            on_session=on_session,
            options=options,
            max_connections=max_connections,
        )
    if stack == "picoquic":
        listener: Listener = await picoquic_module().serve_picoquic(
            host,
            port,
            certificate=certificate,
            private_key=private_key,
            on_session=on_session,
            options=options,
            max_connections=max_connections,
            **({} if stream_buffer is None else {"stream_buffer": stream_buffer}),
            **({} if congestion_control is None else {"congestion_control": congestion_control}),
            **({} if send_quantum is None else {"send_quantum": send_quantum}),
            **({} if busy_connections is None else {"busy_connections": busy_connections}),
            **({} if busy_send_quantum is None else {"busy_send_quantum": busy_send_quantum}),
        )
        return listener
    raise ValueError(f"unknown QUIC stack {stack!r} (one of {', '.join(QUIC_STACKS)})")
