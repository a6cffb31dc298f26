"""MoQT over WebTransport on aiopquic (picoquic's HTTP/3 and WebTransport, h3zero/picowt).

picoquic parses HTTP/3, answers the extended CONNECT and frames the
WebTransport streams on its own thread; aiopquic hands each session's events
to a ``WebTransportSession`` object on the event loop. This module puts one
:class:`MoqtConnection` on one such session, on both sides:

* The session's data events (stream bytes, FIN, resets, STOP_SENDING,
  datagrams) go straight into the MoQT session inside the dispatcher's
  callback, as aiomoqt does (``_WTSessionMixin._on_event``), instead of
  through aiopquic's per-stream inbox queues, which only an async reader per
  stream would empty. Session-level events (ready, created streams, close)
  still run aiopquic's own handling first.
* picowt allocates a stream id on its thread, so opening a stream is a round
  trip, but ``Transport.open_stream`` must answer at once: it returns a local
  id of the right kind (bidirectional or not, ours) and the writes wait in the
  overflow of :class:`~._picoquic_rings.RingSender` until picoquic reports the
  real id. Ids are translated both ways; a peer's streams keep their ids.
* Version negotiation is that of the aioquic adapter (``_protocol.py``):
  ``wt-protocol: "moqt-16"`` means draft-16, no ``wt-protocol`` means draft-14
  negotiated in CLIENT_SETUP. picoquic refuses (HTTP 400) a CONNECT whose
  ``wt-available-protocols`` names nothing we speak.
* Application error codes (stream resets, STOP_SENDING) are mapped into and
  out of the HTTP/3 WebTransport range by aiopquic; session closes travel in a
  CLOSE_WEBTRANSPORT_SESSION capsule (code and reason).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiopquic.asyncio.webtransport import (
    _EVT_STREAM_DESTROY,
    _EVT_STREAM_TX_DRAINED,
    _EVT_WT_CNX_CLOSED,
    _EVT_WT_DATAGRAM,
    _EVT_WT_NEW_SESSION,
    _EVT_WT_SESSION_CLOSED,
    _EVT_WT_STOP_SENDING,
    _EVT_WT_STREAM_CREATED,
    _EVT_WT_STREAM_DATA,
    _EVT_WT_STREAM_DESTROY,
    _EVT_WT_STREAM_FIN,
    _EVT_WT_STREAM_RESET,
    WT_SESSION_GONE,
    _get_dispatcher_registry,
    connect_webtransport,
)
from aiopquic.quic.configuration import QuicConfiguration
from aiopquic.quic.connection import _TX_CLOSE

from .._log import library_logger
from ..errors import SessionCloseCode
from ..session import Session
from ..version import DRAFT_14
from ._connection import MoqtConnection, SessionOptions
from ._picoquic_rings import RingSender, picoquic_priority, ring_write_size
from ._protocol import _WT_PROTOCOLS, ClientTarget
from ._transports import _truncate_reason

__all__ = [
    "WT_PROTOCOLS",
    "PicoquicWebTransport",
    "PicoquicWebTransportSession",
    "adopt_server_session",
    "connect_webtransport_session",
    "remember_connect_paths",
]

logger = library_logger("moqt.aio")

#: WebTransport subprotocols (``wt-protocol``) in server preference order.
WT_PROTOCOLS: dict[str, int] = dict(_WT_PROTOCOLS)
# aiopquic copies a close reason into a 256-byte buffer and sends none when it is longer.
_MAX_REASON_BYTES = 255
# HTTP/3 H3_NO_ERROR: how a client closes its connection once its session ended.
_H3_NO_ERROR = 0x100
# How long a closing side waits for the peer to answer its session close (the
# peer's FIN on the CONNECT stream) before it resets the session's streams, and a
# client before it closes the QUIC connection anyway.
_CLOSE_ANSWER_GRACE = 1.0


class PicoquicWebTransport(RingSender):
    """``moqt._transport.Transport`` on one aiopquic WebTransport session."""

    def __init__(self, wt: Any, loop: asyncio.AbstractEventLoop, *, is_client: bool) -> None:
        super().__init__(loop, max_write=ring_write_size(getattr(wt, "stream_ring_cap", 0)))
        self._wt = wt
        self._initiator = 0 if is_client else 1
        self._next_id = {False: self._initiator, True: self._initiator | 0x2}
        self._real: dict[int, int] = {}  # our id -> picoquic's
        self._ours: dict[int, int] = {}  # picoquic's -> our id
        # Streams asked for, in request order (picoquic answers in that order),
        # and those not asked for yet because the command ring was full.
        self._creating: deque[int] = deque()
        self._owed: deque[int] = deque()
        # What was done to a stream before picoquic created it, to replay then.
        self._deferred: dict[int, list[Callable[[int], None]]] = {}
        self._close_timer: asyncio.TimerHandle | None = None
        self._closing = (0, b"")  # the code and reason of our close
        self.closed = False
        self.on_closed: Callable[[int, str], None] = lambda code, reason: None

    # --- stream ids --------------------------------------------------------------------

    def session_stream_id(self, stream_id: int) -> int:
        """The id the MoQT session knows a picoquic stream by."""
        return self._ours.get(stream_id, stream_id)

    def _is_ours(self, stream_id: int) -> bool:
        return stream_id & 0x1 == self._initiator

    def _real_id(self, stream_id: int) -> int | None:
        """picoquic's id of a stream; None for one of ours it has not made (or forgot)."""
        real = self._real.get(stream_id)
        if real is not None:
            return real
        return None if self._is_ours(stream_id) else stream_id

    def _ring_ready(self, stream_id: int) -> bool:
        return self._real_id(stream_id) is not None

    def _request_streams(self) -> None:
        while self._owed:
            stream_id = self._owed[0]
            try:
                self._wt._state.push_create_stream(not stream_id & 0x2)
            except BufferError:  # the command ring is full: asked again on the next drain
                self._watch()
                return
            except ConnectionError as exc:
                logger.debug("stream_open_failed", error=str(exc))
                return
            self._owed.popleft()
            self._creating.append(stream_id)

    def stream_created(self, real_id: int, error_code: int) -> None:
        """picoquic answered the oldest stream request."""
        if not self._creating:
            return
        stream_id = self._creating.popleft()
        if error_code or not real_id:
            logger.debug("stream_open_refused", stream=stream_id, code=error_code)
            self._forget_stream(stream_id)
            self._deferred.pop(stream_id, None)
            return
        self._real[stream_id] = real_id
        self._ours[real_id] = stream_id
        for action in self._deferred.pop(stream_id, ()):
            action(real_id)
        self.events_processed()

    def stream_destroyed(self, real_id: int) -> None:
        stream_id = self._ours.pop(real_id, None)
        if stream_id is not None:
            self._real.pop(stream_id, None)
            self._forget_stream(stream_id)

    def _on_real(self, stream_id: int, action: Callable[[int], None]) -> None:
        """Run ``action`` with picoquic's id of ``stream_id``, now or once it exists."""
        real = self._real_id(stream_id)
        if real is not None:
            action(real)
        elif stream_id in self._creating or stream_id in self._owed:
            self._deferred.setdefault(stream_id, []).append(action)

    # --- the rings (RingSender) --------------------------------------------------------

    def _ring_write(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        real = self._real_id(stream_id)
        if real is None:
            raise ConnectionError(f"stream {stream_id} is gone")
        self._wt.send_stream_data(real, data, end_stream)

    def _ring_used(self, stream_id: int) -> int:
        real = self._real_id(stream_id)
        return 0 if real is None else int(self._wt.tx_data_ring_used(real))

    def _ring_arm(self, stream_id: int) -> None:
        real = self._real_id(stream_id)
        if real is not None:
            self._wt.set_tx_data_drain_pending(real)

    def events_processed(self) -> None:
        if self._owed:
            self._request_streams()
        super().events_processed()

    # --- Transport ---------------------------------------------------------------------

    def open_stream(self, unidirectional: bool) -> int:
        stream_id = self._next_id[unidirectional]
        self._next_id[unidirectional] = stream_id + 4
        if self.closed:
            return stream_id
        self._overflow[stream_id] = deque()  # writes wait here until picoquic made it
        self._owed.append(stream_id)
        self._request_streams()
        return stream_id

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        self._forget_stream(stream_id)
        if not self.closed:
            self._on_real(stream_id, lambda real: self._wt.reset_stream(real, error_code))

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        if not self.closed:
            self._on_real(stream_id, lambda real: self._wt.stop_stream(real, error_code))

    def _datagram_write(self, data: bytes) -> int:
        return int(self._wt.send_datagram_frame(data))

    def set_stream_priority(self, stream_id: int, priority: int) -> None:
        value = picoquic_priority(priority)
        if not self.closed:
            self._on_real(stream_id, lambda real: self._set_priority(real, value))

    def _set_priority(self, real: int, value: int) -> None:
        try:
            self._wt.set_stream_priority(real, value)
        except ConnectionError:  # the session is gone: nothing to order
            pass

    def close(self, error_code: int, reason: str) -> None:
        """CLOSE_WEBTRANSPORT_SESSION with ``error_code`` and ``reason``.

        Only the capsule goes now. aiopquic's ``close()`` also resets every stream
        of the session (WT_SESSION_GONE), and picoquic sends resets ahead of
        stream data: a peer that takes such a reset for the end of the session
        (the aioquic adapter does) would never read the code. The streams are
        reset once the peer answered (aiopquic does it then) or after a grace
        period.
        """
        if self.closed:
            return
        self._drop_pending()  # nothing more of ours goes out, not even queued bytes
        code = error_code & 0xFFFFFFFF
        text = _truncate_reason(reason, _MAX_REASON_BYTES)
        try:
            self._wt._state.push_close(code, text)
        except BufferError:  # the command ring is full: aiopquic's close retries it
            self._wt.close(code, text)
            return
        except ConnectionError as exc:
            logger.debug("webtransport_close_failed", error=str(exc))
            return
        self._closing = (code, text)
        self._close_timer = self._loop.call_later(_CLOSE_ANSWER_GRACE, self._close_unanswered)

    def abort(self) -> None:
        """Close the session now: the capsule and the streams' resets together."""
        self.connection_closed()
        self._closing = (SessionCloseCode.INTERNAL_ERROR, b"aborted")
        self._close_unanswered()

    def _close_unanswered(self) -> None:
        self._close_timer = None
        if not self._wt.session_closed:
            self._wt.close(*self._closing)
            # picoquic reports nothing more of a session closed on our side.
            code, reason = self._closing
            self.on_closed(code, reason.decode("utf-8", errors="replace"))

    def close_answered(self) -> None:
        """The peer tore the session down after our close: reset its streams now."""
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_unanswered()

    def connection_closed(self) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._drop_pending()

    def _drop_pending(self) -> None:
        self.closed = True
        super().connection_closed()
        self._creating.clear()
        self._owed.clear()
        self._deferred.clear()


class PicoquicWebTransportSession:
    """One aiopquic WebTransport session hosting one MoQT session.

    It takes over the session object's event hook (``_on_event``, which
    aiopquic's dispatcher calls for every event of the session): MoQT's data
    goes to the :class:`MoqtConnection`, the rest to aiopquic's handling.
    """

    def __init__(
        self,
        wt: Any,
        *,
        is_client: bool,
        on_closed: Callable[[PicoquicWebTransportSession], None] | None = None,
    ) -> None:
        self._wt = wt
        self._is_client = is_client
        self._on_closed = on_closed
        self._transport = PicoquicWebTransport(wt, asyncio.get_running_loop(), is_client=is_client)
        self._moqt: MoqtConnection | None = None
        self._ended = False
        self._connection_gone = False
        self._answered = asyncio.Event()  # the peer closed (or answered our close)
        self._drain_scheduled = False
        self._cnx_ptr = int(wt.cnx_ptr)
        self._transport.on_closed = self._end
        self._aiopquic_on_event = wt._on_event
        wt._on_event = self._on_event

    @property
    def moqt(self) -> MoqtConnection | None:
        return self._moqt

    @property
    def transport(self) -> PicoquicWebTransport:
        return self._transport

    def start(self, session: Session, *, name: str, path: str, options: SessionOptions) -> None:
        address = self._wt.peer_address()
        transport = self._transport
        moqt = MoqtConnection(
            session,
            transport_name=name,
            remote_address=(str(address[0]), int(address[1])) if address else None,
            abort=self.abort,
            max_queued_events=options.max_queued_events,
            path=path,
            backlog=transport.backlog,
            wake_from=transport.set_wake_from,
        )
        transport.on_writable = moqt._notify_writable
        self._moqt = moqt

    def abort(self) -> None:
        """End the session right away (INTERNAL_ERROR, no MoQT goodbye)."""
        if not self._ended:
            self._transport.abort()

    def close_connection(self) -> None:
        """Close the QUIC connection under a client's session (a client owns it)."""
        if self._cnx_ptr and not self._connection_gone:
            self._connection_gone = True
            transport = self._wt._transport
            try:
                transport.push_tx_event(
                    _TX_CLOSE, 0, error_code=_H3_NO_ERROR, cnx_ptr=self._cnx_ptr
                )
            except BufferError:  # the command ring is full: picoquic's idle timeout ends it
                return
            transport.wake_up()

    async def wait_answered(self, grace: float) -> None:
        try:
            await asyncio.wait_for(self._answered.wait(), grace)
        except TimeoutError:
            pass

    # --- aiopquic events ---------------------------------------------------------------

    def _on_event(self, ev: tuple[Any, ...]) -> None:
        evt_type, stream_id, data, _fin, error_code = ev[0], ev[1], ev[2], ev[3], ev[4]
        moqt = self._moqt
        transport = self._transport
        if evt_type == _EVT_WT_STREAM_DATA or evt_type == _EVT_WT_STREAM_FIN:
            if moqt is not None and not transport.closed:
                payload = bytes(data) if data is not None else b""
                moqt._feed_stream(
                    transport.session_stream_id(stream_id),
                    payload,
                    evt_type == _EVT_WT_STREAM_FIN,
                )
            return
        if evt_type == _EVT_STREAM_TX_DRAINED:
            self._schedule_drained()
            return
        if evt_type == _EVT_WT_STREAM_RESET:
            # WT_SESSION_GONE: the peer ended the whole session; its capsule (or the
            # connection's end) says how, and must not turn into a stream-level error.
            if error_code == WT_SESSION_GONE:
                self._peer_tore_down()
            elif moqt is not None and not transport.closed:
                moqt._feed_reset(transport.session_stream_id(stream_id), error_code)
            return
        if evt_type == _EVT_WT_DATAGRAM:
            if moqt is not None and not transport.closed and data is not None:
                moqt._feed_datagram(bytes(data))
            return
        self._aiopquic_on_event(ev)
        self._drop_queued_events()
        if evt_type == _EVT_WT_STREAM_CREATED:
            if not self._ended:
                transport.stream_created(stream_id, error_code)
        elif evt_type == _EVT_WT_STOP_SENDING:
            if error_code == WT_SESSION_GONE:
                self._peer_tore_down()
            elif moqt is not None and not transport.closed:
                moqt._feed_stop_sending(transport.session_stream_id(stream_id), error_code)
        elif evt_type == _EVT_WT_STREAM_DESTROY or evt_type == _EVT_STREAM_DESTROY:
            transport.stream_destroyed(stream_id)
        elif evt_type == _EVT_WT_SESSION_CLOSED:
            reason = bytes(data).decode("utf-8", errors="replace") if data else ""
            self._end(error_code, reason or "WebTransport session closed")
        elif evt_type == _EVT_WT_CNX_CLOSED:
            self._connection_gone = True
            self._end(error_code, "connection closed")

    def _peer_tore_down(self) -> None:
        # Once we closed, the peer's WT_SESSION_GONE resets are its answer (picoquic
        # reports no FIN on the CONNECT stream of a session closing on our side).
        if self._transport.closed:
            self._answered.set()
            self._transport.close_answered()

    def _drop_queued_events(self) -> None:
        # aiopquic also queues each event for its events() reader; there is none.
        queue = self._wt._event_queue
        while not queue.empty():
            queue.get_nowait()

    def _schedule_drained(self) -> None:
        # One wake-up per batch of drained rings, after the batch.
        if not self._drain_scheduled:
            self._drain_scheduled = True
            asyncio.get_running_loop().call_soon(self._drained)

    def _drained(self) -> None:
        self._drain_scheduled = False
        if not self._ended:
            self._transport.events_processed()

    def _end(self, code: int, reason: str) -> None:
        self._answered.set()
        if self._ended:
            return
        self._ended = True
        if not self._is_client:
            # aiopquic drops a server session from its dispatcher only when the
            # peer closed it; one we closed would stay there (with the C session
            # state and everything hanging off this object) for the server's life.
            _get_dispatcher_registry().release(self._wt._loop, self._wt._transport, self._wt)
        self._transport.connection_closed()
        if self._moqt is not None:
            self._moqt._connection_lost(code, reason)
        if self._on_closed is not None:
            self._on_closed(self)


# --- server side ---------------------------------------------------------------------


def remember_connect_paths(dispatcher: Any) -> Callable[[], str]:
    """Make the CONNECT path of each new session readable while it is accepted.

    picoquic passes the request's ``:path`` (with its query) in the event that
    announces a session, but aiopquic's dispatcher gives the accept handler only
    the session. The dispatcher's ``route_event`` is wrapped to keep the path of
    the session being accepted; the returned function reads it.
    """
    route = dispatcher.route_event
    current = ["/"]

    def route_event(ev: tuple[Any, ...]) -> None:
        if ev[0] == _EVT_WT_NEW_SESSION:
            data = ev[2]
            current[0] = bytes(data).decode("utf-8", errors="replace") if data else "/"
        route(ev)

    dispatcher.route_event = route_event
    return lambda: current[0]


def adopt_server_session(
    wt: Any,
    *,
    path: str,
    options: SessionOptions,
    on_session: Callable[[MoqtConnection], None],
    on_closed: Callable[[PicoquicWebTransportSession], None],
) -> PicoquicWebTransportSession:
    """Put a MoQT session on a WebTransport session picoquic just accepted."""
    host = PicoquicWebTransportSession(wt, is_client=False, on_closed=on_closed)
    chosen = wt.negotiated_protocol
    session = options.new_session(
        host.transport,
        is_client=False,
        version=WT_PROTOCOLS.get(chosen) if chosen else None,
        webtransport=True,
    )
    host.start(
        session, name=f"picoquic/webtransport/{chosen or 'moq-00'}", path=path, options=options
    )
    moqt = host.moqt
    assert moqt is not None
    on_session(moqt)
    moqt._start()
    return host


# --- client side ---------------------------------------------------------------------


@asynccontextmanager
async def connect_webtransport_session(
    target: ClientTarget,
    *,
    configuration: QuicConfiguration,
    verify: bool,
    cafile: str | None,
    options: SessionOptions,
    setup_timeout: float,
    wait_setup: bool,
) -> AsyncIterator[MoqtConnection]:
    """Open a WebTransport session with aiopquic and a MoQT session in it."""
    offered = [name for name, version in WT_PROTOCOLS.items() if version in target.versions]
    cm = connect_webtransport(
        target.host,
        target.port,
        target.path or "/",
        sni=target.host,
        wt_available_protocols=offered or None,
        timeout=setup_timeout,
        configuration=configuration,
        verify_peer=verify,
        ca_file=cafile,
    )
    wt = await cm.__aenter__()
    host: PicoquicWebTransportSession | None = None
    try:
        host = PicoquicWebTransportSession(wt, is_client=True)
        moqt = _start_client(host, wt, target, options)
        async with asyncio.timeout(setup_timeout):
            if wait_setup:
                await moqt.wait_setup()
        yield moqt
    except BaseException as exc:
        if host is not None:
            host.abort()
            host.close_connection()
        await cm.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    else:
        moqt.close()
        await moqt.wait_closed(grace=2.0)
        await host.wait_answered(_CLOSE_ANSWER_GRACE)
        host.close_connection()
        host.transport.connection_closed()
        await cm.__aexit__(None, None, None)


def _start_client(
    host: PicoquicWebTransportSession, wt: Any, target: ClientTarget, options: SessionOptions
) -> MoqtConnection:
    chosen = wt.negotiated_protocol
    if chosen is not None and WT_PROTOCOLS.get(chosen) in target.versions:
        version = WT_PROTOCOLS[chosen]
    elif chosen is None and DRAFT_14 in target.versions:
        version = DRAFT_14
    else:
        raise ConnectionError(f"server chose WebTransport protocol {chosen!r} we did not offer")
    session = options.new_session(
        host.transport, is_client=True, version=version, webtransport=True
    )
    host.start(
        session,
        name=f"picoquic/webtransport/{chosen or 'moq-00'}",
        path=target.path,
        options=options,
    )
    moqt = host.moqt
    assert moqt is not None
    moqt._start()
    return moqt
