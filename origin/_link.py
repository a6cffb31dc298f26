"""An in-process MoQT session pair: how the origin's own tracks enter the relay.

Tracks the origin produces (the RTMP ladder, re-published MoQT ingest) must reach
viewers and POPs exactly like a remote publisher's, without the relay core knowing
anything about ingest. :class:`LocalLink` joins two :class:`moqt.session.Session`
objects through an in-memory transport: the *publisher* side is ours, the *relay*
side is attached to the :class:`mesh.relay.Relay` as an ordinary peer. The relay
therefore sees PUBLISH / PUBLISH_NAMESPACE and objects on subgroup streams, caches
them once and fans them out; nothing in ``mesh.relay`` or ``moqt`` changes.

Delivery is asynchronous but in order: every operation a session writes is queued
and the queue is flushed from a ``loop.call_soon`` callback, so a session is never
re-entered from inside one of its own calls (the relay answering a PUBLISH while
the publisher is still writing, for instance). Both sessions' timers are armed on
the event loop like :class:`moqt.aio.MoqtConnection` does.

Why not inject objects into the relay's track objects directly: the relay's
upstream bookkeeping (PUBLISH acceptance, PUBLISH_DONE with stream counts,
namespace announcements to SUBSCRIBE_NAMESPACE watchers) is driven by session
events; reproducing it outside would duplicate the relay. The cost of the pair is
one encode + decode of each object in memory, small next to the transcode.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from mesh.relay import Peer, Relay
from moqt.errors import SessionCloseCode
from moqt.events import Event, SessionClosed
from moqt.session import Session
from moqt.version import DRAFT_16

__all__ = ["LocalLink"]

_log = structlog.get_logger("origin.link")

EventHandler = Callable[[Event], None]


@dataclass(slots=True)
class _Op:
    kind: str  # "data" | "reset" | "stop" | "datagram" | "close"
    stream_id: int = 0
    data: bytes = b""
    fin: bool = False
    code: int = 0
    reason: str = ""


class _MemoryTransport:
    """``moqt._transport.Transport`` that queues operations for the other side."""

    def __init__(self, is_client: bool, wake: Callable[[], None]) -> None:
        self.outbox: deque[_Op] = deque()
        self._next = {False: 0 if is_client else 1, True: 2 if is_client else 3}
        self._wake = wake
        self.closed = False

    def _push(self, op: _Op) -> None:
        if self.closed:
            return
        self.outbox.append(op)
        self._wake()

    def open_stream(self, unidirectional: bool) -> int:
        stream_id = self._next[unidirectional]
        self._next[unidirectional] += 4
        return stream_id

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self._push(_Op("data", stream_id, bytes(data), end_stream))

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        self._push(_Op("reset", stream_id, code=error_code))

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        self._push(_Op("stop", stream_id, code=error_code))

    def send_datagram(self, data: bytes) -> None:
        self._push(_Op("datagram", data=bytes(data)))

    def set_stream_priority(self, stream_id: int, priority: int) -> None:
        """In memory every stream is delivered at once: priorities do not apply."""

    def close(self, error_code: int, reason: str) -> None:
        self._push(_Op("close", code=error_code, reason=reason))
        self.closed = True


class _Side:
    def __init__(self, session: Session, transport: _MemoryTransport) -> None:
        self.session = session
        self.transport = transport
        self.handler: EventHandler | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: float | None = None


class LocalLink:
    """A publisher session of ours wired to the relay; see the module docstring.

    ``link.publisher`` is the session to publish on; set its event handler with
    :meth:`set_handler` before calling :meth:`start`. ``link.peer`` is the relay's
    view of it. :meth:`close` ends both sides (the relay ends the link's tracks).
    """

    def __init__(
        self,
        relay: Relay,
        name: str,
        *,
        max_request_id: int = 1000,
        implementation: str = "clutchcall-origin",
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._relay = relay
        self._scheduled = False
        self._closed = asyncio.Event()
        pub_t = _MemoryTransport(True, self._wake)
        relay_t = _MemoryTransport(False, self._wake)
        self._pub = _Side(
            Session(
                pub_t,
                is_client=True,
                version=DRAFT_16,
                max_request_id=max_request_id,
                max_object_size=relay.config.max_object_size,
                implementation=implementation,
            ),
            pub_t,
        )
        self._rel = _Side(
            Session(
                relay_t,
                is_client=False,
                version=DRAFT_16,
                max_request_id=max_request_id,
                max_object_size=relay.config.max_object_size,
                implementation="clutchcall-relay",
            ),
            relay_t,
        )
        self.name = name
        self.peer: Peer = relay.attach(self._rel.session, name)
        self._rel.handler = self._to_relay

    @property
    def publisher(self) -> Session:
        return self._pub.session

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def set_handler(self, handler: EventHandler) -> None:
        """Events of the publisher session (SubscribeRequested, PublishAccepted, ...)."""
        self._pub.handler = handler

    def start(self) -> None:
        """CLIENT_SETUP / SERVER_SETUP; requests may be queued right after."""
        now = self._loop.time()
        self._dispatch(self._pub, self._pub.session.initiate(now))
        self._dispatch(self._rel, self._rel.session.initiate(now))
        self._flush()  # the setup exchange completes here: requests may follow at once
        if not self._pub.session.setup_complete:
            raise RuntimeError("in-memory MoQT setup did not complete")

    def close(self, reason: str = "broadcast ended") -> None:
        if self._pub.session.closed:
            return
        self._dispatch(self._pub, self._pub.session.close(SessionCloseCode.NO_ERROR, reason))
        self._flush()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # --- plumbing ------------------------------------------------------------------------

    def _to_relay(self, event: Event) -> None:
        self._relay.handle_event(self.peer, event)
        if isinstance(event, SessionClosed):
            self._relay.detach(self.peer)

    def _wake(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        moved = True
        while moved:
            moved = False
            for src, dst in ((self._pub, self._rel), (self._rel, self._pub)):
                while src.transport.outbox:
                    op = src.transport.outbox.popleft()
                    self._apply(op, dst)
                    moved = True

    def _apply(self, op: _Op, to: _Side) -> None:
        session, now = to.session, self._loop.time()
        if op.kind == "data":
            events = session.stream_data_received(op.stream_id, op.data, op.fin, now)
        elif op.kind == "reset":
            events = session.stream_reset(op.stream_id, op.code, now)
        elif op.kind == "stop":
            events = session.stop_sending_received(op.stream_id, op.code, now)
        elif op.kind == "datagram":
            events = session.datagram_received(op.data, now)
        else:
            events = session.connection_lost(op.code, op.reason, now)
        self._dispatch(to, events)

    def _dispatch(self, side: _Side, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, SessionClosed):
                self._on_closed(side, event)
            if side.handler is None:
                continue
            try:
                side.handler(event)
            except Exception:
                _log.exception(
                    "link_handler_failed", link=self.name, event_type=type(event).__name__
                )
        self._arm(side)

    def _on_closed(self, side: _Side, event: SessionClosed) -> None:
        if side.timer is not None:
            side.timer.cancel()
            side.timer = None
        _log.debug("link_side_closed", link=self.name, code=event.code, reason=event.reason)
        if self._pub.session.closed and self._rel.session.closed:
            self._closed.set()

    def _arm(self, side: _Side) -> None:
        if side.session.closed:
            return
        deadline = side.session.get_timer()
        if deadline == side.timer_at:
            return
        if side.timer is not None:
            side.timer.cancel()
            side.timer = None
        side.timer_at = deadline
        if deadline is not None:
            side.timer = self._loop.call_at(deadline, self._on_timer, side)

    def _on_timer(self, side: _Side) -> None:
        side.timer = None
        side.timer_at = None
        self._dispatch(side, side.session.handle_timer(self._loop.time()))
