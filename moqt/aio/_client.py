"""Connect to a MoQT server: ``moqt://host:port/path`` (raw QUIC) or ``https://...`` (WebTransport)."""

from __future__ import annotations

import asyncio
import importlib
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import ModuleType
from urllib.parse import urlsplit

from aioquic.asyncio.client import connect as quic_connect
from aioquic.asyncio.protocol import QuicStreamHandler
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from ..version import DRAFT_14, DRAFT_16
from ._connection import MoqtConnection, SessionOptions, client_session
from ._protocol import ClientTarget, MoqtProtocol

__all__ = ["QUIC_STACKS", "HandshakeError", "connect", "parse_moqt_url", "picoquic_module"]

#: QUIC implementations the adapters run on (``stack=`` of :func:`connect`).
QUIC_STACKS = ("aioquic", "picoquic")
#: Congestion controllers picoquic registers (aiopquic checks the name again).
CONGESTION_CONTROLS = ("bbr", "cubic", "newreno", "dcubic", "prague", "c4", "bbr1")
#: picoquic's BBR (its current version). aiopquic's own default is ``bbr1``, BBRv1, which
#: on a rate limit with a shallow queue (tc tbf 1.5 Mbit/s, 50 ms) lost 40 % of its
#: packets and held audio 4-5 s behind: tests/e2e/test_congestion.py; figures in
#: bench/RESULTS.md.
DEFAULT_CONGESTION_CONTROL = "bbr"


def picoquic_module() -> ModuleType:
    """``moqt.aio._picoquic``, imported on first use: aiopquic (C, its own thread) is an
    optional dependency (``pip install 'clutchcall[picoquic]'``), loaded only when a
    caller picks ``stack="picoquic"``."""
    try:
        return importlib.import_module("moqt.aio._picoquic")
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "aiopquic":
            raise
        raise ModuleNotFoundError(
            "the picoquic QUIC stack needs aiopquic: pip install 'clutchcall[picoquic]' "
            "(or use the default stack, aioquic)",
            name=exc.name,
        ) from exc


def parse_moqt_url(url: str, versions: Sequence[int] = (DRAFT_16, DRAFT_14)) -> ClientTarget:
    """``moqt://host[:port][/path][?query]`` is raw QUIC, ``https://...`` WebTransport."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("moqt", "https"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} (use moqt:// or https://)")
    if not parts.hostname:
        raise ValueError(f"{url!r}: the URL has no host")
    if not versions or any(v not in (DRAFT_16, DRAFT_14) for v in versions):
        raise ValueError(f"unsupported versions {versions!r}")
    path = parts.path or ("/" if scheme == "https" else "")
    if parts.query:
        path += "?" + parts.query
    return ClientTarget(
        host=parts.hostname,
        port=parts.port or 443,
        path=path,
        webtransport=scheme == "https",
        versions=tuple(versions),
    )


class HandshakeError(ConnectionError):
    """The QUIC connection to ``address`` closed before the session opened.

    ``untrusted_certificate``: our TLS refused the server's certificate (self-signed or
    from a CA not in ``cafile`` / the system store).
    """

    def __init__(self, address: str, code: int, reason: str) -> None:
        super().__init__(f"QUIC handshake with {address} failed ({code:#x}): {reason or 'closed'}")
        self.address = address
        self.code = code
        self.reason = reason

    @property
    def untrusted_certificate(self) -> bool:
        # CRYPTO_ERROR 0x100 + TLS alert: 42 bad_certificate .. 46 certificate_unknown, 48 unknown_ca
        return self.code - 0x100 in (42, 43, 44, 45, 46, 48)


def _consume_handshake_waiter(protocol: MoqtProtocol) -> None:
    """aioquic fails its handshake waiter (right after this handler runs) even when nobody
    waits any more (we gave up first, e.g. on ``setup_timeout``): retrieve that error so
    asyncio does not log "Future exception was never retrieved"."""
    waiter: asyncio.Future[None] | None = getattr(protocol, "_connected_waiter", None)
    if waiter is None:
        return

    def consume(future: asyncio.Future[None]) -> None:
        if not future.cancelled():
            future.exception()

    if waiter.done():
        consume(waiter)
    else:
        waiter.add_done_callback(consume)


@asynccontextmanager
async def connect(
    url: str,
    *,
    versions: Sequence[int] = (DRAFT_16, DRAFT_14),
    verify: bool = True,
    cafile: str | None = None,
    options: SessionOptions | None = None,
    setup_timeout: float = 10.0,
    wait_setup: bool = True,
    stack: str = "aioquic",
    congestion_control: str | None = None,
) -> AsyncIterator[MoqtConnection]:
    """Open a MoQT session; yields once SETUP completed (unless ``wait_setup`` is False).

    ``versions`` lists the drafts offered (raw QUIC: one ALPN each; WebTransport:
    ``moqt-16`` in ``wt-available-protocols``, draft-14 through CLIENT_SETUP).
    ``stack`` picks the QUIC implementation (:data:`QUIC_STACKS`): ``aioquic``
    (pure Python) or ``picoquic`` (C, on its own thread), both for raw QUIC and
    WebTransport. ``congestion_control`` names picoquic's controller (None: ``bbr``,
    :data:`CONGESTION_CONTROLS`); aioquic's is NewReno. On exit the
    session is closed (NO_ERROR) and the connection awaited.
    """
    target = parse_moqt_url(url, versions)
    opts = options or SessionOptions()
    if stack not in QUIC_STACKS:
        raise ValueError(f"unknown QUIC stack {stack!r} (one of {', '.join(QUIC_STACKS)})")
    if stack == "picoquic":
        async with picoquic_module().connect_picoquic(
            target,
            verify=verify,
            cafile=cafile,
            options=opts,
            setup_timeout=setup_timeout,
            wait_setup=wait_setup,
            **({} if congestion_control is None else {"congestion_control": congestion_control}),
        ) as picoquic_connection:
            connection: MoqtConnection = picoquic_connection
            yield connection
        return
    config = QuicConfiguration(**target.quic_settings())
    if not verify:
        config.verify_mode = ssl.CERT_NONE
    elif cafile is not None:
        config.load_verify_locations(cafile)

    protocols: list[MoqtProtocol] = []

    def create_protocol(
        quic: QuicConnection, stream_handler: QuicStreamHandler | None = None
    ) -> MoqtProtocol:
        protocol = MoqtProtocol(quic, stream_handler, options=opts, target=target)
        protocols.append(protocol)
        terminated = protocol._connection_terminated_handler

        def on_terminated() -> None:
            _consume_handshake_waiter(protocol)
            terminated()

        protocol._connection_terminated_handler = on_terminated
        return protocol

    opening = quic_connect(
        target.host, target.port, configuration=config, create_protocol=create_protocol
    )
    entered = False
    try:
        async with client_session(
            opening, setup_timeout=setup_timeout, wait_setup=wait_setup
        ) as moqt:
            entered = True
            yield moqt
    except ConnectionError as exc:
        # aioquic raises a bare ConnectionError when the handshake fails: say with whom and why.
        closed = protocols[-1]._quic._close_event if protocols else None
        if entered or closed is None or isinstance(exc, HandshakeError):
            raise
        raise HandshakeError(
            f"{target.host}:{target.port}", closed.error_code, closed.reason_phrase
        ) from exc
