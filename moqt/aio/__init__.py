"""asyncio adapters over aioquic: MoQT on raw QUIC and on WebTransport, one UDP port.

Server: :func:`serve` picks the protocol per connection by ALPN (``moqt-16``,
``moq-00``, ``h3`` for WebTransport). Client: :func:`connect` with a
``moqt://`` (raw QUIC) or ``https://`` (WebTransport) URL. Both yield a
:class:`MoqtConnection` around a sans-I/O :class:`moqt.session.Session`.
"""

from ._certificate import (
    CertificatePair,
    certificate_sha256,
    generate_self_signed,
    write_self_signed,
)
from ._client import connect, parse_moqt_url
from ._connection import (
    ConnectionClosed,
    EventHandler,
    MoqtConnection,
    RequestFailed,
    SessionOptions,
)
from ._protocol import ALPN_H3, ClientTarget, MoqtProtocol
from ._server import DEFAULT_SERVER_ALPNS, MoqtServer, serve, server_configuration

__all__ = [
    "ALPN_H3",
    "DEFAULT_SERVER_ALPNS",
    "CertificatePair",
    "ClientTarget",
    "ConnectionClosed",
    "EventHandler",
    "MoqtConnection",
    "MoqtProtocol",
    "MoqtServer",
    "RequestFailed",
    "SessionOptions",
    "certificate_sha256",
    "connect",
    "generate_self_signed",
    "parse_moqt_url",
    "serve",
    "server_configuration",
    "write_self_signed",
]
