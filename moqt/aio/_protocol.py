"""One aioquic connection carrying MoQT: raw QUIC or WebTransport, picked by ALPN.

``moqt-16`` -> draft-16 directly on QUIC; ``moq-00`` -> draft-14 directly on
QUIC (the version is negotiated in CLIENT_SETUP); ``h3`` -> HTTP/3 with one
WebTransport session opened by an extended CONNECT, whose ``wt-protocol``
(answer to the client's ``wt-available-protocols``) picks draft-16, and whose
absence means draft-14 negotiated in CLIENT_SETUP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol, QuicStreamHandler
from aioquic.h3.connection import H3Connection
from aioquic.h3.events import (
    DatagramReceived,
    DataReceived,
    H3Event,
    HeadersReceived,
    WebTransportStreamDataReceived,
)
from aioquic.quic.connection import NetworkAddress, QuicConnection, QuicConnectionState
from aioquic.quic.events import (
    ConnectionTerminated,
    DatagramFrameReceived,
    HandshakeCompleted,
    ProtocolNegotiated,
    QuicEvent,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)
from aioquic.quic.packet import QuicErrorCode, QuicFrameType

from .._buffer import Buffer, NeedMoreData
from .._log import library_logger
from .._transport import Transport
from ..errors import SessionCloseCode
from ..session import Session
from ..version import ALPN_DRAFT_14, ALPN_DRAFT_16, DRAFT_14, DRAFT_16, alpn_for
from ._backlog import quic_send_backlog
from ._connection import MoqtConnection, SessionOptions
from ._transports import (
    CLOSE_WEBTRANSPORT_SESSION,
    QuicTransport,
    WebTransportH3,
    WebTransportTransport,
    http3_code_to_webtransport,
)

__all__ = ["ALPN_H3", "ClientTarget", "MoqtProtocol", "parse_sf_string_list", "raw_session"]

logger = library_logger("moqt.aio")

ALPN_H3 = "h3"
# WebTransport subprotocol names for the drafts that negotiate there (draft-14 does not).
_WT_PROTOCOLS = {"moqt-16": DRAFT_16}
# draft-ietf-webtrans-http3: streams of a session that is gone are reset with this code.
WT_SESSION_GONE = 0x170D7B68
# How long a closing WebTransport session waits for the peer before closing QUIC.
_WT_CLOSE_GRACE = 1.0


@dataclass(frozen=True, slots=True)
class ClientTarget:
    """Where and how a client connects (from a ``moqt://`` or ``https://`` URL)."""

    host: str
    port: int
    path: str
    webtransport: bool
    versions: tuple[int, ...]

    def quic_settings(self) -> dict[str, Any]:
        """QuicConfiguration fields of a client for this target, the same on both stacks
        (aioquic's and aiopquic's configurations take these names)."""
        alpns = [ALPN_H3] if self.webtransport else [alpn_for(v) for v in self.versions]
        return {
            "is_client": True,
            "alpn_protocols": alpns,
            "server_name": self.host,
            "max_data": 32 << 20,
            "max_stream_data": 8 << 20,
            "max_datagram_frame_size": 65536,
            "idle_timeout": 30.0,
        }


def parse_sf_string_list(value: str) -> list[str]:
    """Parse an RFC 9651 List of Strings (``"a", "b"``); tokens are accepted too."""
    items: list[str] = []
    for raw in value.split(","):
        item = raw.strip().split(";", 1)[0].strip()
        if len(item) >= 2 and item[0] == item[-1] == '"':
            item = item[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if item:
            items.append(item)
    return items


def _read_outcome(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class MoqtProtocol(QuicConnectionProtocol):
    """aioquic protocol that hosts exactly one MoQT session.

    Server side: ``on_session`` is called with the new :class:`MoqtConnection`
    before any MoQT byte is processed. Client side: ``target`` says what to
    open; :meth:`wait_session` returns the connection once it exists.
    """

    def __init__(
        self,
        quic: QuicConnection,
        stream_handler: QuicStreamHandler | None = None,
        *,
        options: SessionOptions,
        on_session: Callable[[MoqtConnection], None] | None = None,
        target: ClientTarget | None = None,
        on_closed: Callable[[MoqtProtocol], None] | None = None,
        refuse: bool = False,
    ) -> None:
        super().__init__(quic, stream_handler)
        self._on_closed = on_closed
        self._refuse = refuse
        self._options = options
        self._on_session = on_session
        self._target = target
        self._is_client = target is not None
        self._alpn: str | None = None
        self._h3: H3Connection | None = None
        self._wt: WebTransportTransport | None = None
        self._connect_stream_id: int | None = None
        self._capsule_buffer = b""
        self._wt_gone = False
        self._moqt: MoqtConnection | None = None
        self._ready: asyncio.Future[MoqtConnection] = asyncio.get_running_loop().create_future()
        # aioquic's connect() reports a failed handshake itself; nobody may await this then.
        self._ready.add_done_callback(retrieve_exception)
        self._flush_scheduled = False
        self._terminated = False
        self._log = logger.bind(role="client" if self._is_client else "server")

    # --- public ------------------------------------------------------------------------

    @property
    def moqt(self) -> MoqtConnection | None:
        return self._moqt

    async def wait_session(self) -> MoqtConnection:
        return await self._ready

    def abort(self) -> None:
        """Close the QUIC connection right away (no MoQT goodbye)."""
        if not self._terminated:
            self._quic.close(error_code=SessionCloseCode.INTERNAL_ERROR, reason_phrase="aborted")
            self.transmit()

    # --- transmit coalescing -----------------------------------------------------------

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self.transmit()

    # --- QUIC events -------------------------------------------------------------------

    def datagram_received(self, data: bytes | str, addr: NetworkAddress) -> None:
        super().datagram_received(data, addr)
        if not self._terminated and self._quic._state is QuicConnectionState.DRAINING:
            self._peer_closed()
        if self._moqt is not None:
            self._moqt._notify_writable()

    def _peer_closed(self) -> None:
        """The peer's CONNECTION_CLOSE arrived. aioquic reports ``ConnectionTerminated``
        only at the end of its draining period (3 x PTO: seconds once a loaded host
        inflated the RTT variance), and meanwhile sends nothing, not even a PING's ACK:
        the session learns the close (its code and reason) now, not after the drain."""
        close = self._quic._close_event
        if close is not None:
            self._lost(close.error_code, close.reason_phrase)

    async def wait_closed(self) -> None:
        """A client the peer closed ends its draining period at once: its UDP socket is
        its own, so a late packet of the connection has nobody to reach (RFC 9000
        10.2.2's wait protects a server's shared socket from answering them with
        stateless resets). Otherwise ``connect()``'s exit waited 3 x PTO for nothing."""
        draining = self._quic._state is QuicConnectionState.DRAINING
        if self._is_client and not self._terminated and draining:
            self._quic._close_end()
            self._process_events()
            self.transmit()  # re-arms the timer: none is left after the end
        await super().wait_closed()

    def quic_event_received(self, event: QuicEvent) -> None:
        if self._refuse and not isinstance(event, ConnectionTerminated):
            if not self._terminated:
                # Over the server's connection limit: CONNECTION_REFUSED, nothing else.
                self._quic.close(
                    error_code=QuicErrorCode.CONNECTION_REFUSED,
                    frame_type=QuicFrameType.PADDING,
                    reason_phrase="server busy",
                )
                self._schedule_flush()
            return
        if isinstance(event, ProtocolNegotiated):
            self._alpn = event.alpn_protocol
            if self._alpn == ALPN_H3:
                self._h3 = WebTransportH3(self._quic, enable_webtransport=True)
            elif self._alpn in (ALPN_DRAFT_16, ALPN_DRAFT_14) and not self._is_client:
                self._start_raw()
            return
        if isinstance(event, HandshakeCompleted):
            if self._is_client:
                if self._h3 is not None:
                    self._send_connect()
                elif self._alpn in (ALPN_DRAFT_16, ALPN_DRAFT_14):
                    self._start_raw()
            return
        if isinstance(event, ConnectionTerminated):
            self._terminated = True
            self._lost(event.error_code, event.reason_phrase)
            if self._on_closed is not None:
                self._on_closed(self)
            return
        if self._h3 is not None:
            self._h3_quic_event(event)
            return
        moqt = self._moqt
        if moqt is None:
            return
        if isinstance(event, StreamDataReceived):
            moqt._feed_stream(event.stream_id, event.data, event.end_stream)
        elif isinstance(event, StreamReset):
            moqt._feed_reset(event.stream_id, event.error_code)
        elif isinstance(event, StopSendingReceived):
            moqt._feed_stop_sending(event.stream_id, event.error_code)
        elif isinstance(event, DatagramFrameReceived):
            moqt._feed_datagram(event.data)

    def _lost(self, code: int, reason: str) -> None:
        if self._moqt is not None:
            self._moqt._connection_lost(code, reason)
        if self._is_client and not self._ready.done():
            self._ready.set_exception(ConnectionError(f"connection closed ({code:#x}): {reason}"))

    async def ping(self) -> None:
        """aioquic's PING, except that a PING whose caller stopped waiting (a timeout, a
        cancelled probe) leaves no future behind whose ``ConnectionError`` nobody reads:
        aioquic fails every pending PING when the connection ends, and asyncio then logs
        "Future exception was never retrieved" in the application's output."""
        waiter = self._loop.create_future()
        waiter.add_done_callback(_read_outcome)
        self._ping_waiters[id(waiter)] = waiter
        self._quic.send_ping(id(waiter))
        self.transmit()
        await asyncio.shield(waiter)

    # --- raw QUIC ----------------------------------------------------------------------

    def _start_raw(self) -> None:
        transport = QuicTransport(self._quic, self._schedule_flush)
        session = raw_session(transport, self._alpn, self._options, self._target)
        self._attach(session, f"quic/{self._alpn}", None)

    def _attach(self, session: Session, name: str, path: str | None) -> None:
        paths = self._quic._network_paths
        address = (str(paths[0].addr[0]), int(paths[0].addr[1])) if paths else None
        moqt = MoqtConnection(
            session,
            transport_name=name,
            remote_address=address,
            abort=self.abort,
            max_queued_events=self._options.max_queued_events,
            path=path,
            backlog=lambda: quic_send_backlog(self._quic),
            ping=self.ping,
        )
        self._moqt = moqt
        if self._on_session is not None:
            self._on_session(moqt)
        moqt._start()
        if self._is_client and not self._ready.done():
            self._ready.set_result(moqt)
        self._schedule_flush()

    # --- WebTransport ------------------------------------------------------------------

    def _h3_quic_event(self, event: QuicEvent) -> None:
        assert self._h3 is not None
        wt = self._wt
        moqt = self._moqt
        if wt is not None and moqt is not None:
            if isinstance(event, StreamReset) and event.error_code == WT_SESSION_GONE:
                # The peer tore the whole WebTransport session down.
                self._session_gone(SessionCloseCode.NO_ERROR, "WebTransport session gone")
            elif isinstance(event, StreamReset) and event.stream_id in wt.streams:
                code = http3_code_to_webtransport(event.error_code)
                wt.streams.discard(event.stream_id)
                moqt._feed_reset(event.stream_id, event.error_code if code is None else code)
            elif isinstance(event, StopSendingReceived) and event.stream_id in wt.streams:
                code = http3_code_to_webtransport(event.error_code)
                moqt._feed_stop_sending(event.stream_id, event.error_code if code is None else code)
        for h3_event in self._h3.handle_event(event):
            self._h3_event(h3_event)

    def _h3_event(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived):
            if self._is_client:
                self._connect_answered(event)
            else:
                self._connect_requested(event)
        elif isinstance(event, WebTransportStreamDataReceived):
            wt, moqt = self._wt, self._moqt
            if wt is None or moqt is None or event.session_id != wt.session_id:
                # A stream for a session we do not have: refuse it.
                self._quic.stop_stream(
                    event.stream_id, 0x3994BD84
                )  # H3_WEBTRANSPORT_BUFFERED_STREAM_REJECTED
                return
            wt.streams.add(event.stream_id)
            moqt._feed_stream(event.stream_id, event.data, event.stream_ended)
            if event.stream_ended:
                wt.streams.discard(event.stream_id)
        elif isinstance(event, DatagramReceived):
            if (
                self._wt is not None
                and self._moqt is not None
                and event.stream_id == self._wt.session_id
            ):
                self._moqt._feed_datagram(event.data)
        elif isinstance(event, DataReceived):
            if event.stream_id == self._connect_stream_id:
                self._capsules(event.data, event.stream_ended)

    def _connect_requested(self, event: HeadersReceived) -> None:
        assert self._h3 is not None
        headers = {k: v for k, v in event.headers}
        method = headers.get(b":method")
        protocol = headers.get(b":protocol")
        if method != b"CONNECT" or protocol != b"webtransport":
            self._h3.send_headers(event.stream_id, [(b":status", b"404")], end_stream=True)
            self._schedule_flush()
            return
        if self._wt is not None:
            # One MoQT session per connection.
            self._h3.send_headers(event.stream_id, [(b":status", b"429")], end_stream=True)
            self._schedule_flush()
            return
        offered = parse_sf_string_list(
            headers.get(b"wt-available-protocols", b"").decode("ascii", errors="replace")
        )
        chosen = next((p for p in offered if p in _WT_PROTOCOLS), None)
        response = [(b":status", b"200"), (b"sec-webtransport-http3-draft", b"draft02")]
        if chosen is not None:
            response.append((b"wt-protocol", f'"{chosen}"'.encode()))
        elif offered and not _accepts_draft14_fallback(offered):
            self._h3.send_headers(event.stream_id, [(b":status", b"400")], end_stream=True)
            self._schedule_flush()
            return
        self._h3.send_headers(event.stream_id, response)
        self._connect_stream_id = event.stream_id
        self._wt = WebTransportTransport(
            self._quic, self._h3, event.stream_id, self._schedule_flush, self._wt_closed_locally
        )
        version = _WT_PROTOCOLS[chosen] if chosen is not None else None
        session = self._options.new_session(
            self._wt, is_client=False, version=version, webtransport=True
        )
        path = headers.get(b":path", b"/").decode("utf-8", errors="replace")
        self._attach(session, f"webtransport/{chosen or 'moq-00'}", path)

    def _send_connect(self) -> None:
        assert self._h3 is not None and self._target is not None
        target = self._target
        stream_id = self._quic.get_next_available_stream_id()
        headers = [
            (b":method", b"CONNECT"),
            (b":protocol", b"webtransport"),
            (b":scheme", b"https"),
            (b":authority", f"{target.host}:{target.port}".encode()),
            (b":path", (target.path or "/").encode()),
            (b"sec-webtransport-http3-draft02", b"1"),
        ]
        offered = [name for name, version in _WT_PROTOCOLS.items() if version in target.versions]
        if offered:
            headers.append(
                (b"wt-available-protocols", ", ".join(f'"{p}"' for p in offered).encode())
            )
        self._connect_stream_id = stream_id
        self._h3.send_headers(stream_id, headers, end_stream=False)
        self._schedule_flush()

    def _connect_answered(self, event: HeadersReceived) -> None:
        assert self._h3 is not None and self._target is not None
        if event.stream_id != self._connect_stream_id or self._wt is not None:
            return
        headers = {k: v for k, v in event.headers}
        status = headers.get(b":status", b"")
        if status != b"200":
            self._fail(
                f"WebTransport CONNECT refused with status {status.decode(errors='replace')}"
            )
            return
        chosen_list = parse_sf_string_list(
            headers.get(b"wt-protocol", b"").decode(errors="replace")
        )
        chosen = chosen_list[0] if chosen_list else None
        if (
            chosen is not None
            and chosen in _WT_PROTOCOLS
            and _WT_PROTOCOLS[chosen] in self._target.versions
        ):
            version = _WT_PROTOCOLS[chosen]
        elif chosen is None and DRAFT_14 in self._target.versions:
            version = DRAFT_14
        else:
            self._fail(f"server chose WebTransport protocol {chosen!r} we did not offer")
            return
        self._wt = WebTransportTransport(
            self._quic, self._h3, event.stream_id, self._schedule_flush, self._wt_closed_locally
        )
        session = self._options.new_session(
            self._wt, is_client=True, version=version, webtransport=True
        )
        self._attach(session, f"webtransport/{chosen or 'moq-00'}", self._target.path)

    def _fail(self, reason: str) -> None:
        self._log.warning("webtransport_connect_failed", reason=reason)
        if self._is_client and not self._ready.done():
            self._ready.set_exception(ConnectionError(reason))
        self._quic.close(error_code=0x100, reason_phrase=reason)  # H3_NO_ERROR
        self._schedule_flush()

    def _capsules(self, data: bytes, ended: bool) -> None:
        """Parse capsules on the CONNECT stream; CLOSE_WEBTRANSPORT_SESSION or FIN ends it."""
        self._capsule_buffer += data
        while self._capsule_buffer:
            buf = Buffer(self._capsule_buffer)
            try:
                ctype = buf.pull_varint()
                length = buf.pull_varint()
                payload = buf.pull_bytes(length)
            except NeedMoreData:
                break
            self._capsule_buffer = self._capsule_buffer[buf.position :]
            if ctype == CLOSE_WEBTRANSPORT_SESSION and len(payload) >= 4:
                code = int.from_bytes(payload[:4], "big")
                reason = payload[4:].decode("utf-8", errors="replace")
                self._session_gone(code, reason)
                return
        if len(self._capsule_buffer) > 65536:
            self._session_gone(SessionCloseCode.PROTOCOL_VIOLATION, "oversized capsule")
            return
        if ended:
            self._session_gone(SessionCloseCode.NO_ERROR, "WebTransport session ended")

    def _session_gone(self, code: int, reason: str) -> None:
        if self._wt_gone:
            return
        self._wt_gone = True
        if self._moqt is not None:
            self._moqt._connection_lost(code, reason)
        wt = self._wt
        if wt is not None and not wt.closed:
            wt.closed = True
            self._quic.send_stream_data(wt.session_id, b"", end_stream=True)
        # Our server hosts one session per connection: close QUIC after a grace period.
        self._loop.call_later(_WT_CLOSE_GRACE, self._close_quic_after_session)
        self._schedule_flush()

    def _wt_closed_locally(self) -> None:
        self._loop.call_later(_WT_CLOSE_GRACE, self._close_quic_after_session)

    def _close_quic_after_session(self) -> None:
        if not self._terminated:
            self._quic.close(error_code=0x100, reason_phrase="")
            self.transmit()


def raw_session(
    transport: Transport, alpn: str | None, options: SessionOptions, target: ClientTarget | None
) -> Session:
    """The session on a raw QUIC connection, by ALPN: ``moqt-16`` is draft-16; ``moq-00``
    is draft-14 for a client and negotiated in CLIENT_SETUP by a server. A client
    (``target`` given) sends its path and authority in CLIENT_SETUP."""
    if target is None:
        return options.new_session(
            transport, is_client=False, version=DRAFT_16 if alpn == ALPN_DRAFT_16 else None
        )
    return options.new_session(
        transport,
        is_client=True,
        version=DRAFT_16 if alpn == ALPN_DRAFT_16 else DRAFT_14,
        path=target.path,
        authority=f"{target.host}:{target.port}",
    )


def retrieve_exception(future: asyncio.Future[MoqtConnection]) -> None:
    """Done callback: mark a failed future's exception retrieved (nobody may await it)."""
    if not future.cancelled():
        future.exception()


def _accepts_draft14_fallback(offered: list[str]) -> bool:
    # A client that offers only protocols we do not speak may still fall back to
    # draft-14 (versions in CLIENT_SETUP) when it gets no wt-protocol answer.
    return all(p.startswith("moqt-") for p in offered)
