"""MoQT over aiopquic: picoquic, a C QUIC and HTTP/3 stack with its own network thread.

The aioquic adapters build, encrypt and send every packet in Python on the
event loop's thread; on a relay that fans one stream out to many viewers that
is most of its CPU (``bench/RESULTS.md``). aiopquic runs picoquic on a thread
of its own and exchanges stream bytes and events with the loop over rings, so
packet work leaves the interpreter and can use a second core. This module puts
the same :class:`MoqtConnection` on it: :func:`serve_picoquic` answers raw QUIC
(``moqt-16``, ``moq-00``) and WebTransport (``h3``, the browsers' way in) on one
UDP port, as the aioquic server does, and :func:`connect_picoquic` opens either.
The WebTransport half (picoquic's h3zero/picowt under aiopquic) is in
``_picoquic_wt.py``; the ring bookkeeping both share in ``_picoquic_rings.py``.

Differences from the aioquic path, all visible here:

* picoquic's ``send_stream_data`` is all-or-nothing and refuses with
  ``BufferError`` when a ring is full. The transports then keep the bytes in a
  per-stream overflow (so the session's writes stay synchronous and in order)
  and hand them over when picoquic drained.
* The send backlog (:meth:`MoqtConnection.send_backlog`) is what the stream
  rings hold that picoquic has not put into packets yet, plus that overflow.
  A reader of the backlog that finds it non-empty is woken (the writable
  handler) when picoquic next drains one of those streams.
* aiopquic's raw close carries no CONNECTION_CLOSE reason phrase; the MoQT
  reason text (up to 256 bytes) is put in by ``picoquic_close_ex`` on picoquic's
  thread (``_picoquic_hooks.py``, x86-64 Linux with aiopquic 0.6.1; elsewhere the
  peer gets the code alone). WebTransport sessions carry both, in the
  CLOSE_WEBTRANSPORT_SESSION capsule (reasons up to 255 bytes).
* Stream priorities are real: picoquic sends lower values first, strictly
  (``_picoquic_rings.picoquic_priority``); the session puts its control stream
  first, or a congested session's answers would wait behind its media.
* picoquic opens its own sockets (every address of the host, no SO_REUSEPORT):
  the server hands its loop a socket bound here instead
  (``_picoquic_socket.py``), so it listens on the address asked for and
  processes can share the port. Address validation (Retry) is picoquic's own,
  set through ``_picoquic_native.py``.
* A WebTransport CONNECT whose ``wt-available-protocols`` names nothing we
  speak is refused (HTTP 400) where the aioquic server falls back to draft-14.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiopquic.asyncio.client import connect as picoquic_connect
from aiopquic.asyncio.dispatch import serve_dispatch
from aiopquic.asyncio.protocol import QuicConnectionProtocol
from aiopquic.asyncio.server import serve as picoquic_serve
from aiopquic.quic.configuration import QuicConfiguration
from aiopquic.quic.events import (
    ConnectionTerminated,
    DatagramFrameReceived,
    HandshakeCompleted,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)

from .._log import library_logger
from ..errors import SessionCloseCode
from ..version import ALPN_DRAFT_14, ALPN_DRAFT_16
from ._client import CONGESTION_CONTROLS, DEFAULT_CONGESTION_CONTROL
from ._connection import MoqtConnection, SessionOptions, client_session
from ._picoquic_hooks import hooks as picoquic_hooks
from ._picoquic_native import NEVER, NativeQuic, native_quic
from ._picoquic_rings import (
    EVENT_RING_CAPACITY,
    RingSender,
    picoquic_priority,
    ring_write_size,
)
from ._picoquic_server import (
    BUSY_CONNECTIONS,
    BUSY_SEND_QUANTUM,
    BusyPacing,
    Pacing,
    PicoquicServer,
    RetryMode,
    bbr_options,
)
from ._picoquic_socket import adopt_socket, bind_server_socket
from ._picoquic_wt import (
    WT_PROTOCOLS,
    PicoquicWebTransportSession,
    adopt_server_session,
    connect_webtransport_session,
    remember_connect_paths,
)
from ._protocol import ALPN_H3, ClientTarget, raw_session, retrieve_exception

__all__ = [
    "PicoquicProtocol",
    "PicoquicServer",
    "PicoquicTransport",
    "connect_picoquic",
    "serve_picoquic",
]

logger = library_logger("moqt.aio")

RAW_ALPNS = (ALPN_DRAFT_16, ALPN_DRAFT_14)
RETRY_MODES = ("auto", "always", "never")
_PICOQUIC_THRESHOLD = 64  # PICOQUIC_DEFAULT_HALF_OPEN_RETRY_THRESHOLD
#: Per-stream send ring of a server's connections. aiopquic's own default, 4 MiB, is
#: malloc'ed per stream and touched as the stream's bytes go through it: most of a
#: viewer's memory (bench/RESULTS.md, issue 15). A relay writes while its backlog is
#: below 16 KiB, so 64 KiB holds what it writes; larger writes are cut to fit.
STREAM_BUFFER = 64 << 10
#: What :func:`serve_picoquic` answers unless told otherwise: raw QUIC and WebTransport,
#: in the aioquic server's order (``DEFAULT_SERVER_ALPNS``).
DEFAULT_ALPNS = (ALPN_DRAFT_16, ALPN_DRAFT_14, ALPN_H3)


#: How long a close waits for picoquic to send what the session wrote before it.
CLOSE_FLUSH = 0.5
_FLUSH_POLL = 0.005


def cnx_pointer(quic: Any) -> int:
    """The ``picoquic_cnx_t *`` of an aiopquic connection (0 once it closed)."""
    return int(getattr(quic, "_cnx_ptr", 0) or 0)


class PicoquicTransport(RingSender):
    """``moqt._transport.Transport`` on one aiopquic (picoquic) connection."""

    def __init__(self, quic: Any, loop: asyncio.AbstractEventLoop) -> None:
        ring = getattr(getattr(quic, "_configuration", None), "stream_ring_cap", 0)
        super().__init__(loop, max_write=ring_write_size(ring))
        self._quic = quic
        #: picoquic's connection pointer; aiopquic zeroes its own copy once the
        #: connection closed, before we hear of it.
        self.cnx = cnx_pointer(quic)
        self._closing: asyncio.TimerHandle | None = None
        self._gone = False

    # --- the rings (RingSender) --------------------------------------------------------

    def _ring_write(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        self._quic.send_stream_data(stream_id, data, end_stream)

    def _ring_used(self, stream_id: int) -> int:
        return int(self._quic.tx_data_ring_used(stream_id))

    def _ring_arm(self, stream_id: int) -> None:
        self._quic.set_tx_data_drain_pending(stream_id)

    # --- Transport ---------------------------------------------------------------------

    def open_stream(self, unidirectional: bool) -> int:
        # picoquic creates the stream on its first write, which the session does at once.
        return int(self._quic.get_next_available_stream_id(is_unidirectional=unidirectional))

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        self._forget_stream(stream_id)
        self._quic.reset_stream(stream_id, error_code)

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        self._quic.stop_stream(stream_id, error_code)

    def _datagram_write(self, data: bytes) -> int:
        return int(self._quic.send_datagram_frame(data))

    def set_stream_priority(self, stream_id: int, priority: int) -> None:
        try:
            self._quic.set_stream_priority(stream_id, picoquic_priority(priority))
        except ConnectionError:  # not open yet or already closed: nothing to order
            pass

    def close(self, error_code: int, reason: str) -> None:
        self._cancel_wake()
        native = picoquic_hooks()
        cnx = self.cnx
        # Even an empty reason is set: it replaces any left for a freed connection
        # that had this address.
        if (native is None or not native.set_close_reason(cnx, reason)) and reason:
            logger.debug("quic_close_without_reason", code=error_code, reason=reason)
        # picoquic closes at once and drops what its rings still hold: the last
        # messages (a SERVER_SETUP, a REQUEST_ERROR) would be lost to the close.
        # aioquic sends them first; so do we, for up to CLOSE_FLUSH seconds.
        deadline = self._loop.time() + CLOSE_FLUSH
        self._close_when_flushed(error_code, deadline)

    def _close_when_flushed(self, error_code: int, deadline: float) -> None:
        self._closing = None
        if self._gone:
            return
        if self.backlog() and self._loop.time() < deadline:
            self._closing = self._loop.call_later(
                _FLUSH_POLL, self._close_when_flushed, error_code, deadline
            )
            return
        self._quic.close(error_code=error_code)

    def connection_closed(self) -> None:
        self._gone = True
        if self._closing is not None:
            self._closing.cancel()
            self._closing = None
        super().connection_closed()
        native = picoquic_hooks()
        if native is not None:
            native.forget(self.cnx)


class PicoquicProtocol(QuicConnectionProtocol):  # type: ignore[misc]
    """One aiopquic connection hosting one MoQT session on raw QUIC.

    Server side: ``on_session`` gets the new :class:`MoqtConnection` before any
    MoQT byte is processed. Client side: ``target`` says what to open;
    :meth:`wait_session` returns the connection once it exists.
    """

    def __init__(
        self,
        quic: Any,
        stream_handler: Any = None,
        *,
        options: SessionOptions,
        on_session: Callable[[MoqtConnection], None] | None = None,
        target: ClientTarget | None = None,
        on_closed: Callable[[PicoquicProtocol], None] | None = None,
    ) -> None:
        super().__init__(quic, stream_handler)
        self._options = options
        self._on_session = on_session
        self._target = target
        self._on_closed = on_closed
        self._is_client = target is not None
        self._moqt: MoqtConnection | None = None
        self._transport_moqt: PicoquicTransport | None = None
        self._terminated = False
        self._cnx = 0
        self._ready: asyncio.Future[MoqtConnection] = asyncio.get_running_loop().create_future()
        self._ready.add_done_callback(retrieve_exception)

    @property
    def moqt(self) -> MoqtConnection | None:
        return self._moqt

    @property
    def cnx(self) -> int:
        """picoquic's connection pointer (0 before the session started)."""
        return self._cnx

    async def wait_session(self) -> MoqtConnection:
        return await self._ready

    def abort(self) -> None:
        """Close the QUIC connection right away (no MoQT goodbye)."""
        if not self._terminated:
            self._quic.close(error_code=SessionCloseCode.INTERNAL_ERROR)

    # aiopquic calls this for every batch of events of this connection, drained
    # rings included (those carry no QuicEvent of their own).
    def _process_events(self) -> None:
        super()._process_events()
        transport = self._transport_moqt
        if transport is not None and not self._terminated:
            transport.events_processed()

    def quic_event_received(self, event: Any) -> None:
        moqt = self._moqt
        if isinstance(event, StreamDataReceived):
            if moqt is not None:
                moqt._feed_stream(event.stream_id, bytes(event.data), event.end_stream)
        elif isinstance(event, HandshakeCompleted):
            self._start_session(event.alpn_protocol)
        elif isinstance(event, ConnectionTerminated):
            self._terminated = True
            if self._transport_moqt is not None:
                self._transport_moqt.connection_closed()
            native = picoquic_hooks()
            told = native.take_remote_reason(self._cnx) if native is not None else None
            reason = event.reason_phrase or told or "connection closed"
            if moqt is not None:
                moqt._connection_lost(event.error_code, reason)
            if self._is_client and not self._ready.done():
                self._ready.set_exception(
                    ConnectionError(f"connection closed ({event.error_code:#x}): {reason}")
                )
            if self._on_closed is not None:
                self._on_closed(self)
        elif moqt is None:
            return
        elif isinstance(event, StreamReset):
            moqt._feed_reset(event.stream_id, event.error_code)
        elif isinstance(event, StopSendingReceived):
            moqt._feed_stop_sending(event.stream_id, event.error_code)
        elif isinstance(event, DatagramFrameReceived):
            moqt._feed_datagram(bytes(event.data))

    def _start_session(self, alpn: str | None) -> None:
        if self._moqt is not None:
            return
        if alpn not in RAW_ALPNS:
            logger.warning("unexpected_alpn", alpn=alpn)
            self._quic.close(error_code=SessionCloseCode.PROTOCOL_VIOLATION)
            return
        native = picoquic_hooks()
        if native is not None:  # reasons left for a connection that had this address
            self._cnx = cnx_pointer(self._quic)
            native.forget(self._cnx)
            native.track(self._cnx)
        loop = asyncio.get_running_loop()
        transport = PicoquicTransport(self._quic, loop)
        self._transport_moqt = transport
        options = self._options
        session = raw_session(transport, alpn, options, self._target)
        address = self._quic.peer_address()
        moqt = MoqtConnection(
            session,
            transport_name=f"picoquic/{alpn}",
            remote_address=(str(address[0]), int(address[1])) if address else None,
            abort=self.abort,
            max_queued_events=options.max_queued_events,
            backlog=transport.backlog,
            wake_from=transport.set_wake_from,
        )
        transport.on_writable = moqt._notify_writable
        self._moqt = moqt
        if self._on_session is not None:
            self._on_session(moqt)
        moqt._start()
        if self._is_client and not self._ready.done():
            self._ready.set_result(moqt)


def _check_congestion_control(name: str) -> None:
    if name not in CONGESTION_CONTROLS:
        raise ValueError(
            f"congestion_control must be one of {', '.join(CONGESTION_CONTROLS)}, not {name!r}"
        )


def _throwaway_port(family: int) -> int:
    """A free UDP port for picoquic to open its own socket on, before it gets ours."""
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve_picoquic(
    host: str,
    port: int,
    *,
    certificate: Path,
    private_key: Path,
    on_session: Callable[[MoqtConnection], None],
    options: SessionOptions | None = None,
    max_connections: int = 10_000,
    idle_timeout: float = 30.0,
    alpns: Sequence[str] = DEFAULT_ALPNS,
    wt_path: str = "",
    reuse_port: bool = False,
    retry: RetryMode = "auto",
    retry_threshold: int = 64,
    stream_buffer: int = STREAM_BUFFER,
    congestion_control: str = DEFAULT_CONGESTION_CONTROL,
    send_quantum: float = 0.0,
    busy_connections: int = BUSY_CONNECTIONS,
    busy_send_quantum: float = BUSY_SEND_QUANTUM,
) -> PicoquicServer:
    """Serve MoQT with picoquic (see :func:`moqt.aio.serve` for the contract).

    ``alpns`` as for the aioquic server: ``moqt-16`` and ``moq-00`` are raw QUIC,
    ``h3`` WebTransport; with ``h3`` among them both run on the one port (aiopquic's
    ``serve_dispatch`` routes each connection by its ALPN). A WebTransport session's
    :attr:`MoqtConnection.path` is its CONNECT ``:path``, query included.
    ``wt_path`` limits WebTransport to CONNECTs for that path (and ``path?query``);
    the default ``""`` takes every path, as the aioquic server does.

    The server listens on ``host`` only (``OSError`` when the port is taken there),
    on a socket bound here and handed to picoquic's loop
    (:mod:`moqt.aio._picoquic_socket`); ``reuse_port`` sets SO_REUSEPORT on it, so
    several processes (``clutchcall pop --workers``) share the port.

    ``stream_buffer`` bounds the bytes picoquic holds for each stream we send on (its
    ring, allocated per stream; a longer backlog waits in the session's overflow).
    ``congestion_control`` names picoquic's controller for every connection
    (:data:`CONGESTION_CONTROLS`); with ``bbr``, ``send_quantum`` is the burst it may
    send at once, in seconds of its pacing rate (its "send quantum"; 0: picoquic's own,
    1 ms, at least two packets). At a viewer's few Mbit/s picoquic's own paces one or two
    packets per wake-up of its thread, one sendmsg each: on a relay fanning out 200 x
    2.5 Mbit/s on the 2-core host that delivered 64-79 %, a 1,000-viewer mesh 44.7-98.0 %;
    0.02 delivered 100 % in both on 25-40 % less relay CPU (0.01: 100 % in the mesh). It
    also lets BBR keep three quanta in flight, and on a 1.5 Mbit/s link with a 50 ms queue
    0.02 failed 4 runs of 11 (471 packets lost in one, audio p99 1.5 s) and 0.01 1 of 14,
    where picoquic's own passed (bench/RESULTS.md, issue 15). So the quantum follows the
    server's load (``BusyPacing``): ``send_quantum`` while it holds fewer than
    ``busy_connections`` connections, at least ``busy_send_quantum`` from then on for the
    connections that come after (``busy_connections`` 0: never).

    Client addresses are validated with a stateless Retry (RFC 9000 section 8.1) by
    picoquic itself: with ``retry`` "auto" once more than ``retry_threshold``
    handshakes are half-open (a flood of spoofed Initials stays that many
    connections), "always" for every new connection, "never" not at all (as the
    aioquic POP's ``quic_retry``; see :mod:`moqt.aio._picoquic_native`).
    """
    unknown = [alpn for alpn in alpns if alpn not in DEFAULT_ALPNS]
    if unknown or not alpns:
        raise ValueError(f"picoquic serves {', '.join(DEFAULT_ALPNS)}, not {list(alpns)}")
    if wt_path and not wt_path.startswith("/"):
        raise ValueError(f"wt_path must start with '/' (or be empty for any path), not {wt_path!r}")
    if retry not in RETRY_MODES:
        raise ValueError(f"retry must be one of {', '.join(RETRY_MODES)}, not {retry!r}")
    if retry_threshold < 1:
        raise ValueError("retry_threshold must be >= 1")
    if stream_buffer < 4096:
        raise ValueError("stream_buffer must be at least 4096 bytes")
    _check_congestion_control(congestion_control)
    if not 0 <= send_quantum <= 0.1:
        raise ValueError(f"send_quantum is 0 to 0.1 seconds, not {send_quantum!r}")
    if send_quantum and congestion_control != "bbr":
        raise ValueError(f"send_quantum is BBR's, not {congestion_control}'s")
    if busy_connections < 0:
        raise ValueError(f"busy_connections is >= 0 (0: never), not {busy_connections!r}")
    if not 0 <= busy_send_quantum <= 0.1:
        raise ValueError(f"busy_send_quantum is 0 to 0.1 seconds, not {busy_send_quantum!r}")
    pacing = (
        Pacing(send_quantum, busy_connections, busy_send_quantum)
        if congestion_control == "bbr"
        else Pacing(0.0, 0, 0.0)  # the quantum is BBR's: another controller keeps its own
    )
    opts = options or SessionOptions()
    sock = bind_server_socket(host, port, reuse_port=reuse_port)
    try:
        port = int(sock.getsockname()[1])
        return await _serve(
            sock,
            host,
            port,
            certificate=certificate,
            private_key=private_key,
            on_session=on_session,
            options=opts,
            max_connections=max_connections,
            idle_timeout=idle_timeout,
            alpns=alpns,
            wt_path=wt_path,
            retry=retry,
            retry_threshold=retry_threshold,
            stream_buffer=stream_buffer,
            congestion_control=congestion_control,
            pacing=pacing,
        )
    finally:
        sock.close()  # a no-op once picoquic has it


async def _serve(
    sock: socket.socket,
    host: str,
    port: int,
    *,
    certificate: Path,
    private_key: Path,
    on_session: Callable[[MoqtConnection], None],
    options: SessionOptions,
    max_connections: int,
    idle_timeout: float,
    alpns: Sequence[str],
    wt_path: str,
    retry: RetryMode,
    retry_threshold: int,
    stream_buffer: int,
    congestion_control: str,
    pacing: Pacing,
) -> PicoquicServer:
    opts = options
    throwaway = _throwaway_port(sock.family)
    raw_alpns = [alpn for alpn in alpns if alpn in RAW_ALPNS]
    config = QuicConfiguration(
        is_client=False,
        alpn_protocols=raw_alpns,
        idle_timeout=idle_timeout,
        max_data=32 << 20,
        max_stream_data=8 << 20,
        max_datagram_frame_size=65536,
        certificate_file=str(certificate),
        private_key_file=str(private_key),
        event_ring_capacity=EVENT_RING_CAPACITY,
        socket_buffer_size=4 << 20,
        ip_family=sock.family,
        congestion_control_algorithm=congestion_control,
    )
    config.max_connections = max_connections
    config.stream_ring_cap = stream_buffer
    protocols: list[PicoquicProtocol] = []
    busy: list[BusyPacing] = []  # once the server runs

    def forget(protocol: PicoquicProtocol) -> None:
        if protocol in protocols:
            protocols.remove(protocol)

    def create_protocol(quic: Any, stream_handler: Any = None) -> PicoquicProtocol:
        protocol = PicoquicProtocol(
            quic, stream_handler, options=opts, on_session=on_session, on_closed=forget
        )
        protocols.append(protocol)
        for governor in busy:
            governor.observe()
        return protocol

    if ALPN_H3 not in alpns:
        server = await serve_raw_on_socket(sock, config, create_protocol)
        transport = server._engine._transport
        native = _tune(server, transport, retry, retry_threshold, pacing)
        busy.extend(_governor(native, pacing))
        return PicoquicServer(
            server,
            (host, port),
            protocols,
            native=native,
            retry=retry,
            transport=transport,
            pacing=busy[0] if busy else None,
        )

    sessions: list[PicoquicWebTransportSession] = []

    def forget_session(session: PicoquicWebTransportSession) -> None:
        if session in sessions:
            sessions.remove(session)

    def accept(wt: Any) -> None:
        sessions.append(
            adopt_server_session(
                wt,
                path=connect_path(),
                options=opts,
                on_session=on_session,
                on_closed=forget_session,
            )
        )
        for governor in busy:
            governor.observe()

    server = await serve_dispatch(
        host,
        throwaway,
        configuration=config,
        create_protocol=create_protocol,
        wt_path=wt_path,
        wt_handler=accept,
        wt_supported_protocols=list(WT_PROTOCOLS),
    )
    connect_path = remember_connect_paths(server._wt_server._dispatcher)
    await _adopt(server, server._transport, throwaway, sock)
    native = _tune(server, server._transport, retry, retry_threshold, pacing)
    busy.extend(_governor(native, pacing))
    return PicoquicServer(
        server,
        (host, port),
        protocols,
        sessions,
        native=native,
        retry=retry,
        transport=server._transport,
        pacing=busy[0] if busy else None,
    )


async def serve_raw_on_socket(
    sock: socket.socket, configuration: QuicConfiguration, create_protocol: Callable[..., Any]
) -> Any:
    """aiopquic's raw-QUIC server (``aiopquic.asyncio.server.serve``) on ``sock``, a UDP
    socket bound by the caller (``_picoquic_socket.bind_server_socket``), instead of the
    sockets picoquic would open on every address. Returns aiopquic's server."""
    host = "::1" if sock.family == socket.AF_INET6 else "127.0.0.1"
    throwaway = _throwaway_port(sock.family)
    server = await picoquic_serve(
        host, throwaway, configuration=configuration, create_protocol=create_protocol
    )
    await _adopt(server, server._engine._transport, throwaway, sock)
    return server


async def _adopt(server: Any, transport: Any, throwaway: int, sock: socket.socket) -> None:
    try:
        await adopt_socket(throwaway, sock)
    except BaseException:
        server.close()
        raise
    # picoquic's loop may be waiting on the socket it had: wake it so that it waits on ours.
    transport.wake_up()


def _tune(
    server: Any, transport: Any, retry: RetryMode, threshold: int, pacing: Pacing
) -> NativeQuic | None:
    """Apply the Retry policy and BBR's send quantum (checked by :func:`serve_picoquic`) to
    a started server (closed again when the Retry policy cannot be set)."""
    native = native_quic(transport)
    if native is None:
        if pacing.quantum or pacing.busy_connections:
            logger.warning(
                "picoquic_send_quantum_not_set",
                reason="this aiopquic build does not expose picoquic's context",
            )
        if retry == "auto" and threshold == _PICOQUIC_THRESHOLD:
            return None  # picoquic's own default is what was asked for
        server.close()
        raise RuntimeError(
            f"this aiopquic build does not let us set picoquic's Retry policy "
            f"(retry={retry}, threshold={threshold}): use retry auto with threshold "
            f"{_PICOQUIC_THRESHOLD}, or the aioquic stack"
        )
    native.set_retry(always=retry == "always", threshold=NEVER if retry == "never" else threshold)
    if pacing.quantum:
        native.set_congestion_control("bbr", bbr_options(pacing.quantum))
    return native


def _governor(native: NativeQuic | None, pacing: Pacing) -> list[BusyPacing]:
    """The server's :class:`BusyPacing`, if its quantum follows its load."""
    if native is None or not pacing.busy_connections or pacing.busy_quantum <= pacing.quantum:
        return []
    return [BusyPacing(native, pacing)]


@asynccontextmanager
async def connect_picoquic(
    target: ClientTarget,
    *,
    verify: bool,
    cafile: str | None,
    options: SessionOptions,
    setup_timeout: float,
    wait_setup: bool,
    congestion_control: str = DEFAULT_CONGESTION_CONTROL,
) -> AsyncIterator[MoqtConnection]:
    """The client half of :func:`moqt.aio.connect` for ``stack="picoquic"``:
    raw QUIC for a ``moqt://`` target, WebTransport for ``https://``."""
    _check_congestion_control(congestion_control)
    config = QuicConfiguration(
        **target.quic_settings(),
        cafile=cafile,
        event_ring_capacity=EVENT_RING_CAPACITY,
        congestion_control_algorithm=congestion_control,
    )
    if not verify:
        config.verify_mode = ssl.CERT_NONE
    if target.webtransport:
        async with connect_webtransport_session(
            target,
            configuration=config,
            verify=verify,
            cafile=cafile,
            options=options,
            setup_timeout=setup_timeout,
            wait_setup=wait_setup,
        ) as moqt:
            yield moqt
        return

    def create_protocol(quic: Any, stream_handler: Any = None) -> PicoquicProtocol:
        return PicoquicProtocol(quic, stream_handler, options=options, target=target)

    opening = picoquic_connect(
        target.host, target.port, configuration=config, create_protocol=create_protocol
    )
    async with client_session(opening, setup_timeout=setup_timeout, wait_setup=wait_setup) as moqt:
        yield moqt
