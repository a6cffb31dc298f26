"""A two-session in-memory harness: a client and a server Session joined by a fake
QUIC connection that delivers everything in order, optionally in tiny chunks.

    pair = session_pair(DRAFT_16)            # setup already done
    rid = pair.client.subscribe(...)
    pair.deliver_until_idle()
    pair.server_events  # every event the server produced, in order
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from moqt import messages as m
from moqt._buffer import Buffer, NeedMoreData
from moqt.events import Event, SessionClosed
from moqt.session import Session
from moqt.version import DRAFT_14

__all__ = [
    "MemoryTransport",
    "Peer",
    "RawPeer",
    "SessionPair",
    "closed_with",
    "events_of",
    "session_pair",
]


@dataclass
class _Op:
    kind: str  # "data" | "reset" | "stop" | "datagram" | "close"
    stream_id: int = 0
    data: bytes = b""
    fin: bool = False
    code: int = 0
    reason: str = ""


class MemoryTransport:
    """Implements moqt._transport.Transport by queueing operations for the peer.

    Stream ids follow QUIC: bit 0 = server-initiated, bit 1 = unidirectional.
    """

    def __init__(self, is_client: bool) -> None:
        self.is_client = is_client
        self.outbox: deque[_Op] = deque()
        self._next = {False: 0 if is_client else 1, True: 2 if is_client else 3}
        self.closed: tuple[int, str] | None = None
        self.priorities: dict[int, int] = {}
        self.finished: set[int] = set()
        self.resets: dict[int, int] = {}
        self.stops: dict[int, int] = {}
        self.sent_bytes: dict[int, bytearray] = {}

    def open_stream(self, unidirectional: bool) -> int:
        stream_id = self._next[unidirectional]
        self._next[unidirectional] += 4
        return stream_id

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        assert self.closed is None, "send after close"
        assert stream_id not in self.finished, f"data after FIN on stream {stream_id}"
        self.sent_bytes.setdefault(stream_id, bytearray()).extend(data)
        if end_stream:
            self.finished.add(stream_id)
        self.outbox.append(_Op("data", stream_id, bytes(data), end_stream))

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        self.resets[stream_id] = error_code
        self.outbox.append(_Op("reset", stream_id, code=error_code))

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        self.stops[stream_id] = error_code
        self.outbox.append(_Op("stop", stream_id, code=error_code))

    def send_datagram(self, data: bytes) -> None:
        self.outbox.append(_Op("datagram", data=bytes(data)))

    def set_stream_priority(self, stream_id: int, priority: int) -> None:
        assert 0 <= priority <= 255
        self.priorities[stream_id] = priority

    def close(self, error_code: int, reason: str) -> None:
        assert self.closed is None, "closed twice"
        self.closed = (error_code, reason)
        self.outbox.append(_Op("close", code=error_code, reason=reason))


@dataclass
class Peer:
    session: Session
    transport: MemoryTransport
    events: list[Event] = field(default_factory=list)


class SessionPair:
    """A client and a server session and the pipe between them."""

    def __init__(
        self,
        version: int,
        *,
        chunk_size: int | None = None,
        server_version: int | str | None = "same",
        client_kwargs: dict[str, Any] | None = None,
        server_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.chunk_size = chunk_size
        self.now = 0.0
        ct = MemoryTransport(is_client=True)
        st = MemoryTransport(is_client=False)
        sv = version if server_version == "same" else server_version
        assert sv is None or isinstance(sv, int)
        self.c = Peer(Session(ct, is_client=True, version=version, **(client_kwargs or {})), ct)
        self.s = Peer(Session(st, is_client=False, version=sv, **(server_kwargs or {})), st)

    @property
    def client(self) -> Session:
        return self.c.session

    @property
    def server(self) -> Session:
        return self.s.session

    @property
    def client_events(self) -> list[Event]:
        return self.c.events

    @property
    def server_events(self) -> list[Event]:
        return self.s.events

    def connect(self) -> None:
        self.c.events += self.client.initiate(self.now)
        self.s.events += self.server.initiate(self.now)
        self.deliver_until_idle()

    def _apply(self, op: _Op, to: Peer) -> None:
        session, now = to.session, self.now
        if op.kind == "data":
            data = op.data
            size = self.chunk_size
            if size is None or len(data) <= size:
                to.events += session.stream_data_received(op.stream_id, data, op.fin, now)
                return
            for i in range(0, len(data), size):
                last = i + size >= len(data)
                to.events += session.stream_data_received(
                    op.stream_id, data[i : i + size], op.fin and last, now
                )
        elif op.kind == "reset":
            to.events += session.stream_reset(op.stream_id, op.code, now)
        elif op.kind == "stop":
            to.events += session.stop_sending_received(op.stream_id, op.code, now)
        elif op.kind == "datagram":
            to.events += session.datagram_received(op.data, now)
        elif op.kind == "close":
            to.events += session.connection_lost(op.code, op.reason, now)

    def step(self, rng: random.Random | None = None) -> bool:
        """Deliver one queued operation in each direction; False when nothing was queued.

        With ``rng`` the operation is picked at random among the oldest pending one of
        each stream (QUIC keeps order within a stream, not across streams; datagrams
        may overtake anything), so control messages and data streams interleave the
        way a real network may reorder them.  A close always goes last.
        """
        moved = False
        for src, dst in ((self.c, self.s), (self.s, self.c)):
            outbox = src.transport.outbox
            if not outbox:
                continue
            index = 0
            if rng is not None:
                heads: dict[object, int] = {}
                for i, op in enumerate(outbox):
                    key: object = ("dgram", i) if op.kind == "datagram" else op.stream_id
                    if op.kind != "close":
                        heads.setdefault(key, i)
                if heads:
                    index = rng.choice(sorted(heads.values()))
            op = outbox[index]
            del outbox[index]
            self._apply(op, dst)
            moved = True
        return moved

    def deliver_until_idle(
        self, max_steps: int = 100_000, *, rng: random.Random | None = None
    ) -> None:
        for _ in range(max_steps):
            if not self.step(rng):
                return
        raise AssertionError("the sessions never went idle")

    def advance(self, seconds: float) -> None:
        """Move the clock and fire both sessions' timers that are due."""
        self.now += seconds
        for peer in (self.c, self.s):
            timer = peer.session.get_timer()
            if timer is not None and timer <= self.now:
                peer.events += peer.session.handle_timer(self.now)
        self.deliver_until_idle()

    def take(self) -> tuple[list[Event], list[Event]]:
        """Return and clear the events seen so far (client's, server's)."""
        c, s = self.c.events, self.s.events
        self.c.events, self.s.events = [], []
        return c, s


def session_pair(
    version: int,
    *,
    chunk_size: int | None = None,
    connect: bool = True,
    server_version: int | str | None = "same",
    client_kwargs: dict[str, Any] | None = None,
    server_kwargs: dict[str, Any] | None = None,
) -> SessionPair:
    """A connected client/server pair for ``version`` (setup done unless ``connect`` False)."""
    pair = SessionPair(
        version,
        chunk_size=chunk_size,
        server_version=server_version,
        client_kwargs=client_kwargs,
        server_kwargs=server_kwargs,
    )
    if connect:
        pair.connect()
        for peer in (pair.c, pair.s):
            assert not any(isinstance(e, SessionClosed) for e in peer.events), peer.events
    return pair


def events_of[E: Event](events: list[Event], cls: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, cls)]


def closed_with(events: list[Event]) -> SessionClosed | None:
    """The SessionClosed event (asserting it is the last event), or None."""
    closes = events_of(events, SessionClosed)
    if not closes:
        return None
    assert len(closes) == 1 and events[-1] is closes[0], events
    return closes[0]


class RawPeer:
    """One real Session driven by hand-written bytes: the test plays the other endpoint.

    ``RawPeer(version, is_client=False)`` builds a *server* Session; the test is the
    client and sends CLIENT_SETUP with :meth:`setup`.
    """

    def __init__(
        self,
        version: int | None,
        *,
        is_client: bool = False,
        wire_version: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.transport = MemoryTransport(is_client=is_client)
        self.session = Session(self.transport, is_client=is_client, version=version, **kwargs)
        self.version = wire_version if wire_version is not None else (version or DRAFT_14)
        self.is_client = is_client
        self.events: list[Event] = []
        self.now = 0.0
        # The stream the test uses as the control stream.
        self.control = 0
        self._read: dict[int, int] = {}

    def setup(self, *, max_request_id: int = 100, versions: tuple[int, ...] | None = None) -> None:
        """Complete setup as the other endpoint would."""
        params = m.SetupParameters.build(max_request_id=max_request_id)
        if self.is_client:
            self.events += self.session.initiate(self.now)
            self.control = 0
            selected = None if self.version != DRAFT_14 else DRAFT_14
            self.send(m.ServerSetup(selected, params))
        else:
            offered = (
                versions
                if versions is not None
                else (() if self.version != DRAFT_14 else (DRAFT_14,))
            )
            self.send(m.ClientSetup(offered, params))

    def send(self, msg: m.ControlMessage, stream_id: int | None = None, fin: bool = False) -> None:
        self.feed(
            self.control if stream_id is None else stream_id,
            m.encode_control(msg, self.version),
            fin,
        )

    def feed(self, stream_id: int, data: bytes, fin: bool = False) -> list[Event]:
        new = self.session.stream_data_received(stream_id, data, fin, self.now)
        self.events += new
        return new

    def datagram(self, data: bytes) -> list[Event]:
        new = self.session.datagram_received(data, self.now)
        self.events += new
        return new

    def received(self, stream_id: int | None = None) -> list[m.ControlMessage]:
        """Control messages the session wrote on ``stream_id`` since the last call."""
        sid = self.control if stream_id is None else stream_id
        raw = bytes(self.transport.sent_bytes.get(sid, b""))
        start = self._read.get(sid, 0)
        buf = Buffer(raw, start)
        out: list[m.ControlMessage] = []
        while not buf.eof():
            try:
                out.append(m.decode_control(buf, self.session.version or self.version))
            except NeedMoreData:
                break
        self._read[sid] = buf.position
        return out

    def take(self) -> list[Event]:
        events, self.events = self.events, []
        return events
