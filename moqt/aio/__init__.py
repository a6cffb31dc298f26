"""asyncio adapters over aioquic or picoquic: MoQT on raw QUIC and WebTransport, one UDP port.

Server: :func:`serve` picks the protocol per connection by ALPN (``moqt-16``,
``moq-00``, ``h3`` for WebTransport). Client: :func:`connect` with a
``moqt://`` (raw QUIC) or ``https://`` (WebTransport) URL. Both yield a
:class:`MoqtConnection` around a sans-I/O :class:`moqt.session.Session`.

Both also run on picoquic (aiopquic: C, its own network thread, packet and
HTTP/3 work off the event loop): :func:`serve_picoquic` (raw QUIC and
WebTransport on one port, ``listen(..., stack="picoquic")``) and
``connect(..., stack="picoquic")`` for ``moqt://`` and ``https://`` URLs. aiopquic is
imported only then (or when :func:`serve_picoquic` / :class:`PicoquicServer` are first
looked up here): the SDK's ``import clutchcall.streams`` does not load it, and the
client distribution has it as the ``picoquic`` extra.
"""

from typing import TYPE_CHECKING, Any

from ._certificate import (
    CertificatePair,
    certificate_sha256,
    generate_self_signed,
    write_self_signed,
)
from ._client import (
    CONGESTION_CONTROLS,
    DEFAULT_CONGESTION_CONTROL,
    QUIC_STACKS,
    HandshakeError,
    connect,
    parse_moqt_url,
    picoquic_module,
)
from ._connection import (
    ConnectionClosed,
    EventHandler,
    MoqtConnection,
    RequestFailed,
    SessionOptions,
)
from ._protocol import ALPN_H3, ClientTarget, MoqtProtocol
from ._server import (
    DEFAULT_SERVER_ALPNS,
    Listener,
    MoqtServer,
    listen,
    serve,
    server_configuration,
)

if TYPE_CHECKING:
    from ._picoquic import PicoquicServer, serve_picoquic

_PICOQUIC_NAMES = ("PicoquicServer", "serve_picoquic")


def __getattr__(name: str) -> Any:
    """``PicoquicServer`` and ``serve_picoquic`` load aiopquic on first use."""
    if name in _PICOQUIC_NAMES:
        value = getattr(picoquic_module(), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALPN_H3",
    "CONGESTION_CONTROLS",
    "DEFAULT_CONGESTION_CONTROL",
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
