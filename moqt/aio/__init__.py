"""asyncio adapters over aioquic or picoquic: MoQT on raw QUIC and WebTransport, one UDP port.

Server: :func:`serve` picks the protocol per connection by ALPN (``moqt-16``,
``moq-00``, ``h3`` for WebTransport). Client: :func:`connect` with a
``moqt://`` (raw QUIC) or ``https://`` (WebTransport) URL. Both yield a
:class:`MoqtConnection` around a sans-I/O :class:`moqt.session.Session`.

Both also run on picoquic (aiopquic: C, its own network thread, packet and
HTTP/3 work off the event loop): :func:`serve_picoquic` (raw QUIC and
WebTransport on one port, ``listen(..., stack="picoquic")``) and
``connect(..., stack="picoquic")`` for ``moqt://`` and ``https://`` URLs.
"""

from ._certificate import (
    CertificatePair,
    certificate_sha256,
    generate_self_signed,
    write_self_signed,
)
from ._client import QUIC_STACKS, HandshakeError, connect, parse_moqt_url
from ._connection import (
    ConnectionClosed,
    EventHandler,
    MoqtConnection,
    RequestFailed,
    SessionOptions,
)
from ._picoquic import PicoquicServer, serve_picoquic
from ._protocol import ALPN_H3, ClientTarget, MoqtProtocol
from ._server import (
    DEFAULT_SERVER_ALPNS,
    Listener,
    MoqtServer,
    listen,
    serve,
    server_configuration,
)

__all__ = [
    "ALPN_H3",
    "DEFAULT_SERVER_ALPNS",
    "QUIC_STACKS",
    "CertificatePair",
    "ClientTarget",
    "ConnectionClosed",
    "EventHandler",
    "HandshakeError",
    "Listener",
    "MoqtConnection",
    "MoqtProtocol",
    "MoqtServer",
    "PicoquicServer",
    "RequestFailed",
    "SessionOptions",
    "certificate_sha256",
    "connect",
    "generate_self_signed",
    "listen",
    "parse_moqt_url",
    "serve",
    "serve_picoquic",
    "server_configuration",
    "write_self_signed",
]
