"""The asyncio face of one MoQT session: feed inputs, deliver events, run the timer.

A :class:`MoqtConnection` owns a sans-I/O :class:`moqt.session.Session`. The
adapter (raw QUIC or WebTransport) calls the ``_feed_*`` methods with what
arrived; the session's events go either to a synchronous handler (what a relay
uses: it reacts inside the same event-loop callback, no queue in between) or
into a bounded queue read with :meth:`MoqtConnection.wait_event`. A reader too
slow for that queue is not allowed to make it grow: the session is closed with
INTERNAL_ERROR and a reason that says so.

Requests and answers go straight to :attr:`MoqtConnection.session` (every write
goes through the transport, which schedules a transmit); the async helpers here
wait for what comes back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from .._log import library_logger
from .._transport import Transport
from ..errors import LocalError, SessionCloseCode
from ..events import (
    Event,
    FetchAccepted,
    PublishAccepted,
    PublishNamespaceAccepted,
    RequestRejected,
    SessionClosed,
    SetupCompleted,
    SubscribeAccepted,
    SubscribeNamespaceAccepted,
    TrackStatusReceived,
    UpdateAccepted,
)
from ..session import Session

__all__ = [
    "ConnectionClosed",
    "EventHandler",
    "MoqtConnection",
    "RequestFailed",
    "SessionOptions",
    "client_session",
]

logger = library_logger("moqt.aio")

EventHandler = Callable[["MoqtConnection", Event], None]

# Events that answer one of our requests (matched to waiters by request id).
_RESPONSES = (
    SubscribeAccepted,
    RequestRejected,
    FetchAccepted,
    PublishAccepted,
    PublishNamespaceAccepted,
    SubscribeNamespaceAccepted,
    TrackStatusReceived,
    UpdateAccepted,
)


class ConnectionClosed(Exception):
    """The MoQT session is over; ``code``/``reason`` say why."""

    def __init__(self, code: int, reason: str, by_peer: bool) -> None:
        super().__init__(f"session closed ({code:#x}): {reason}")
        self.code = code
        self.reason = reason
        self.by_peer = by_peer


class RequestFailed(Exception):
    """The peer refused our request; ``rejection`` is its RequestRejected event."""

    def __init__(self, rejection: RequestRejected) -> None:
        super().__init__(
            f"{rejection.kind.value} request {rejection.request_id} refused "
            f"({rejection.code:#x}): {rejection.reason}"
        )
        self.rejection = rejection


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """Session parameters an adapter passes to every :class:`Session` it creates."""

    max_request_id: int = 100
    max_object_size: int = 8 << 20
    implementation: str = "clutchcall"
    auth_token: bytes | None = None
    max_queued_events: int = 4096

    def new_session(
        self,
        transport: Transport,
        *,
        is_client: bool,
        version: int | None,
        webtransport: bool = False,
        path: str | None = None,
        authority: str | None = None,
    ) -> Session:
        """The :class:`Session` every adapter (either stack, raw QUIC or WebTransport)
        puts on a new connection; ``auth_token`` goes into a client's CLIENT_SETUP."""
        return Session(
            transport,
            is_client=is_client,
            version=version,
            max_request_id=self.max_request_id,
            max_object_size=self.max_object_size,
            path=path,
            authority=authority,
            auth_token=self.auth_token if is_client else None,
            implementation=self.implementation,
            webtransport=webtransport,
        )


class MoqtConnection:
    """One MoQT session on a QUIC connection or a WebTransport session."""

    def __init__(
        self,
        session: Session,
        *,
        transport_name: str,
        remote_address: tuple[str, int] | None,
        abort: Callable[[], None],
        max_queued_events: int = 4096,
        path: str | None = None,
        backlog: Callable[[], int] = lambda: 0,
        wake_from: Callable[[int], None] = lambda _bytes: None,
        ping: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._session = session
        self._loop = asyncio.get_running_loop()
        self.transport_name = transport_name
        self.remote_address = remote_address
        #: WebTransport CONNECT path (raw QUIC: the PATH setup parameter, see SetupCompleted).
        self.path = path
        self._abort = abort
        self._backlog = backlog
        self._wake_from = wake_from
        self._ping = ping
        self._writable: Callable[[], None] | None = None
        self._handler: EventHandler | None = None
        self._queue: asyncio.Queue[Event] = asyncio.Queue(max_queued_events)
        self._waiters: dict[int, asyncio.Future[Event]] = {}
        self._setup: asyncio.Future[SetupCompleted] = self._loop.create_future()
        self._closed: asyncio.Future[SessionClosed] = self._loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._log = logger.bind(transport=transport_name, remote=_format_addr(remote_address))

    # --- public API --------------------------------------------------------------------

    @property
    def session(self) -> Session:
        """The sans-I/O session: call its request/answer/data methods directly."""
        return self._session

    @property
    def is_closed(self) -> bool:
        return self._closed.done()

    @property
    def close_event(self) -> SessionClosed | None:
        return self._closed.result() if self._closed.done() else None

    def set_event_handler(self, handler: EventHandler | None) -> None:
        """Deliver events synchronously to ``handler`` instead of the queue.

        Events already queued are handed over first, in order. The handler runs
        inside the adapter's callback: it must not block. An exception in it
        closes the session with INTERNAL_ERROR (it never reaches the event loop).
        """
        self._handler = handler
        if handler is not None:
            while not self._queue.empty():
                self._call_handler(self._queue.get_nowait())

    def send_backlog(self) -> int:
        """Bytes written to this connection that QUIC has not sent yet (or must resend)."""
        return self._backlog()

    def set_writable_handler(
        self, handler: Callable[[], None] | None, *, min_backlog: int = 1
    ) -> None:
        """Call ``handler`` when the connection may take more: the moment to look at
        :meth:`send_backlog` and write. It runs inside the adapter's callback and must
        not block.

        On aioquic that is whenever packets from the peer were processed (ACKs may
        have opened the congestion window). On picoquic, whose sending happens on
        another thread, it is when a stream ring drained after :meth:`send_backlog`
        last reported at least ``min_backlog`` bytes: a writer that only holds back
        from that much on says so, and is not woken after every write."""
        self._writable = handler
        self._wake_from(max(1, min_backlog))

    async def wait_setup(self) -> SetupCompleted:
        """Wait until CLIENT_SETUP/SERVER_SETUP completed; raises ConnectionClosed."""
        waiters: list[asyncio.Future[object]] = [self._setup, self._closed]  # type: ignore[list-item]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if self._setup.done():
            return self._setup.result()
        raise self._closed_error()

    async def wait_event(self) -> Event:
        """The next event (SessionClosed is delivered once, then ConnectionClosed is raised)."""
        if self._queue.empty() and self._closed.done():
            raise self._closed_error()
        return await self._queue.get()

    def get_event_nowait(self) -> Event | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    async def events(self) -> AsyncIterator[Event]:
        """Iterate over events until (and including) SessionClosed."""
        while True:
            try:
                event = await self.wait_event()
            except ConnectionClosed:
                return
            yield event
            if isinstance(event, SessionClosed):
                return

    async def wait_response(self, request_id: int) -> Event:
        """Wait for the answer to our request ``request_id`` (accepted or RequestRejected).

        The answer is consumed by the waiter and not queued. Register before the
        answer can arrive: call this right after the request method, without
        awaiting anything else in between.
        """
        if self._closed.done():
            raise self._closed_error()
        future = self._waiters.get(request_id)
        if future is None:
            future = self._loop.create_future()
            self._waiters[request_id] = future
        try:
            return await future
        finally:
            self._waiters.pop(request_id, None)

    async def request[E: Event](self, request_id: int, accepted: type[E]) -> E:
        """Wait for the answer to ``request_id``: the ``accepted`` event, or raise
        :class:`RequestFailed` (refused) / :class:`ConnectionClosed`.

        Typical use: ``ok = await conn.request(conn.session.subscribe(ns, name), SubscribeAccepted)``.
        """
        answer = await self.wait_response(request_id)
        if isinstance(answer, RequestRejected):
            raise RequestFailed(answer)
        if not isinstance(answer, accepted):
            raise TypeError(f"request {request_id} was answered with {type(answer).__name__}")
        return answer

    async def drain(self, grace: float = 5.0, new_uri: str = "") -> SessionClosed:
        """GOAWAY, give the peer ``grace`` seconds to leave, then close."""
        if not self._closed.done():
            try:
                self._session.goaway(new_uri)
            except LocalError as exc:  # GOAWAY refused (e.g. already sent): just close later
                self._log.debug("goaway_failed", error=str(exc))
            self._arm_timer()
        try:
            return await asyncio.wait_for(asyncio.shield(self._closed), grace)
        except TimeoutError:
            self.close(SessionCloseCode.NO_ERROR, "drained")
            return await self.wait_closed(grace=1.0)

    async def ping(self) -> None:
        """A QUIC PING; returns once the peer acknowledged it (the peer is alive and the
        path works, whatever MoQT is doing). Raises :class:`ConnectionClosed` when the
        session ends first, ``NotImplementedError`` on a stack without PING (picoquic:
        aiopquic has no binding for it). Bound it with ``asyncio.timeout``: a peer that
        is gone never answers (QUIC retransmits the PING until its idle timeout)."""
        if self._closed.done():
            raise self._closed_error()
        if self._ping is None:
            raise NotImplementedError(f"{self.transport_name}: this QUIC stack cannot PING")
        try:
            await self._ping()
        except ConnectionError:
            if self._closed.done():
                raise self._closed_error() from None
            raise ConnectionClosed(
                SessionCloseCode.INTERNAL_ERROR, "connection lost", True
            ) from None

    def close(self, code: int = SessionCloseCode.NO_ERROR, reason: str = "") -> None:
        """Close the session (idempotent); ``wait_closed`` waits for the transport."""
        if self._closed.done():
            return
        self._dispatch(self._session.close(code, reason))

    async def wait_closed(self, grace: float | None = None) -> SessionClosed:
        """Wait until the session ended; after ``grace`` seconds the connection is torn down hard."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._closed), grace)
        except TimeoutError:
            self._abort()
            if not self._closed.done():
                self._finish(
                    SessionClosed(SessionCloseCode.INTERNAL_ERROR, "close timed out", False)
                )
            return self._closed.result()

    def statistics(self) -> dict[str, int]:
        return {"queued_events": self._queue.qsize(), "pending_waiters": len(self._waiters)}

    # --- adapter inputs ----------------------------------------------------------------

    def _start(self) -> None:
        self._dispatch(self._session.initiate(self._loop.time()))

    def _feed_stream(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        self._dispatch(
            self._session.stream_data_received(stream_id, data, end_stream, self._loop.time())
        )

    def _feed_reset(self, stream_id: int, error_code: int) -> None:
        self._dispatch(self._session.stream_reset(stream_id, error_code, self._loop.time()))

    def _feed_stop_sending(self, stream_id: int, error_code: int) -> None:
        self._dispatch(
            self._session.stop_sending_received(stream_id, error_code, self._loop.time())
        )

    def _feed_datagram(self, data: bytes) -> None:
        self._dispatch(self._session.datagram_received(data, self._loop.time()))

    def _connection_lost(self, code: int, reason: str) -> None:
        if self._closed.done():
            return
        events = self._session.connection_lost(code, reason, self._loop.time())
        self._dispatch(events)
        if not self._closed.done():
            # The session had already closed on its own side; report the transport end.
            self._finish(SessionClosed(code, reason, True))

    def _notify_writable(self) -> None:
        handler = self._writable
        if handler is None or self._closed.done():
            return
        try:
            handler()
        except Exception:
            self._log.exception("writable_handler_failed")
            self._dispatch(self._session.close(SessionCloseCode.INTERNAL_ERROR, "internal error"))

    # --- internals ---------------------------------------------------------------------

    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            self._route(event)
        self._arm_timer()

    def _route(self, event: Event) -> None:
        if isinstance(event, SetupCompleted) and not self._setup.done():
            self._setup.set_result(event)
            self._log = self._log.bind(version=hex(event.version))
        if isinstance(event, _RESPONSES):
            waiter = self._waiters.get(event.request_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(event)
                return
        if isinstance(event, SessionClosed):
            self._deliver(event)
            self._finish(event)
            return
        self._deliver(event)

    def _deliver(self, event: Event) -> None:
        if self._handler is not None:
            self._call_handler(event)
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            if isinstance(event, SessionClosed):
                # Make room: the close must always be observable.
                self._queue.get_nowait()
                self._queue.put_nowait(event)
                return
            self._log.warning("event_queue_overflow", size=self._queue.maxsize)
            self._dispatch(
                self._session.close(
                    SessionCloseCode.INTERNAL_ERROR,
                    "event queue overflow: the application is not reading events",
                )
            )

    def _call_handler(self, event: Event) -> None:
        assert self._handler is not None
        try:
            self._handler(self, event)
        except Exception:
            self._log.exception("event_handler_failed", event_type=type(event).__name__)
            if not self._closed.done() and not isinstance(event, SessionClosed):
                self._dispatch(
                    self._session.close(SessionCloseCode.INTERNAL_ERROR, "internal error")
                )

    def _finish(self, event: SessionClosed) -> None:
        if self._closed.done():
            return
        self._closed.set_result(event)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._release_callbacks()
        error = ConnectionClosed(event.code, event.reason, event.by_peer)
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(error)
        self._log.info(
            "session_closed", code=event.code, reason=event.reason, by_peer=event.by_peer
        )

    def _release_callbacks(self) -> None:
        """Let go of what points back at this connection once it ended.

        The adapter's callbacks (its abort, backlog and wake-up, bound to the protocol
        and transport that hold this connection) and the application's handlers (bound
        to objects that hold it too) make reference cycles, which only CPython's full
        collections free. A relay ends sessions all day: at each key rotation or token
        revocation the closed ones piled up by the hundred, with their transports, until
        one ran (issue 13's soak). Without the cycles a session goes as soon as its
        last holder lets go."""
        self._handler = None
        self._writable = None
        self._abort = _nothing
        self._backlog = _no_backlog
        self._wake_from = _no_wake
        self._ping = None

    def _closed_error(self) -> ConnectionClosed:
        event = self._closed.result()
        return ConnectionClosed(event.code, event.reason, event.by_peer)

    def _arm_timer(self) -> None:
        if self._closed.done():
            return
        deadline = self._session.get_timer()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._dispatch(self._session.handle_timer(self._loop.time()))


def _format_addr(addr: tuple[str, int] | None) -> str | None:
    if addr is None:
        return None
    return f"{addr[0]}:{addr[1]}"


class ClientHost(Protocol):
    """A client connection's protocol object, on either stack."""

    async def wait_session(self) -> MoqtConnection: ...

    def abort(self) -> None: ...


@asynccontextmanager
async def client_session(
    opening: AbstractAsyncContextManager[Any],
    *,
    setup_timeout: float,
    wait_setup: bool,
) -> AsyncIterator[MoqtConnection]:
    """The client side of :func:`moqt.aio.connect` once a stack's ``connect`` context
    manager (``opening``) is chosen: open it and wait for the session (and its SETUP)
    within ``setup_timeout``; on exit close NO_ERROR and wait for the close, on an error
    abort the connection."""
    async with asyncio.timeout(setup_timeout):
        host: ClientHost = await opening.__aenter__()
    try:
        async with asyncio.timeout(setup_timeout):
            moqt = await host.wait_session()
            if wait_setup:
                await moqt.wait_setup()
        yield moqt
    except BaseException as exc:
        host.abort()
        await opening.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    else:
        moqt.close()
        await moqt.wait_closed(grace=2.0)
        await opening.__aexit__(None, None, None)


def _nothing() -> None:
    return None


def _no_backlog() -> int:
    return 0


def _no_wake(_bytes: int) -> None:
    return None
