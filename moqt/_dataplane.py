"""The session's data plane: incoming subgroup/fetch streams and datagrams routed to
their subscription or fetch, and outgoing streams/datagrams through handles.

Section names in comments are draft-16's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import messages as m
from ._buffer import Buffer, NeedMoreData
from ._codes import publish_done_to_wire
from ._handles import FetchHandle, SubgroupHandle
from ._inbound import InboundMixin
from ._state import FetchReq, State, SubNamespaceReq, SubReq
from .data import (
    FetchEndOfRange,
    FetchHeader,
    FetchStreamParser,
    FetchWriter,
    Object,
    ObjectDatagram,
    SubgroupHeader,
    SubgroupStreamParser,
    SubgroupWriter,
    classify_uni_stream,
    decode_datagram,
)
from .errors import DataStreamResetCode, LocalError, ProtocolViolation, PublishDoneCode
from .events import (
    FetchStreamEnded,
    FetchStreamReset,
    ObjectReceived,
    ObjectSource,
    SubgroupStreamEnded,
    SubgroupStreamOpened,
    SubgroupStreamReset,
    SubgroupStreamStopped,
)
from .types import Namespace, validate_namespace

__all__ = ["DataPlaneMixin"]

# Objects/datagrams for a track alias not known yet are held (draft-16 "Subgroup
# Header", "Datagrams": MAY buffer briefly) up to this many payload bytes in total.
MAX_HELD_BYTES = 4 << 20
MAX_HELD_DATAGRAMS = 256
# How many ended receiving subscriptions we remember, to drop their late data quietly.
MAX_DEAD_ALIASES = 1024
_CANCELLED = int(DataStreamResetCode.CANCELLED)


@dataclass(slots=True, eq=False)
class _RxStream:
    """One incoming unidirectional stream."""

    stream_id: int
    parser: SubgroupStreamParser | FetchStreamParser | None = None
    header: SubgroupHeader | None = None
    sub: SubReq | None = None
    fetch: FetchReq | None = None
    held: list[Object] = field(default_factory=list)
    held_fin: bool = False
    deadline: float | None = None
    first: bytearray = field(default_factory=bytearray)  # bytes before the type is known


@dataclass(slots=True, eq=False)
class _TxStream:
    handle: SubgroupHandle | FetchHandle
    writer: SubgroupWriter | FetchWriter
    sub: SubReq | None = None
    fetch: FetchReq | None = None


def _subgroup_of(rx: _RxStream) -> int:
    """The stream's Subgroup ID (FIRST_OBJECT mode learns it from the first object)."""
    if isinstance(rx.parser, SubgroupStreamParser) and rx.parser.subgroup_id is not None:
        return rx.parser.subgroup_id
    if rx.header is not None and rx.header.subgroup_id is not None:
        return rx.header.subgroup_id
    return 0


class DataPlaneMixin(InboundMixin):
    """Data streams and datagrams, both directions."""

    def _init_dataplane(self) -> None:
        self._rx_streams: dict[int, _RxStream] = {}
        self._tx_streams: dict[int, _TxStream] = {}
        self._held_bytes = 0
        self._held_datagrams: list[tuple[float, ObjectDatagram]] = []
        self._dead_aliases: dict[int, None] = {}  # insertion-ordered set
        self._lingering: dict[int, SubReq] = {}  # request id -> sub after PUBLISH_DONE
        # Streams waiting for their track alias (may hold stale entries; see _waiting_rx).
        self._waiting: dict[int, _RxStream] = {}

    # --- incoming streams ----------------------------------------------------------------

    def _uni_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        rx = self._rx_streams.get(stream_id)
        if rx is None:
            rx = self._rx_streams[stream_id] = _RxStream(stream_id)
        elif rx.held_fin:
            raise ProtocolViolation(f"data after FIN on stream {stream_id}")
        if rx.parser is None:
            rx.first += data
            try:
                first = Buffer(bytes(rx.first[:8])).pull_varint()
            except NeedMoreData:
                if end_stream:
                    del self._rx_streams[stream_id]
                    if rx.first:
                        raise ProtocolViolation("stream ended inside its type") from None
                return
            kind = classify_uni_stream(first, self._v())
            rx.parser = (
                SubgroupStreamParser(self._v(), max_object_size=self._max_object_size)
                if kind == "subgroup"
                else FetchStreamParser(self._v(), max_object_size=self._max_object_size)
            )
            data, rx.first = bytes(rx.first), bytearray()
        for item in rx.parser.feed(data):
            self._rx_item(rx, item)
            if self._closed or stream_id not in self._rx_streams:
                return
        if end_stream:
            rx.parser.finish()
            self._rx_fin(rx)

    def _rx_item(
        self, rx: _RxStream, item: SubgroupHeader | Object | FetchHeader | FetchEndOfRange
    ) -> None:
        if isinstance(item, SubgroupHeader):
            rx.header = item
            self._rx_attach(rx)
        elif isinstance(item, FetchHeader):
            self._rx_fetch_header(rx, item)
        elif isinstance(item, Object):
            if rx.sub is not None or rx.fetch is not None:
                self._deliver(rx, item)
            else:
                self._hold(rx, item)
        # FetchEndOfRange markers carry nothing the application needs: gaps in a
        # fetch response already mean "does not exist / unknown".

    def _rx_attach(self, rx: _RxStream) -> None:
        assert rx.header is not None
        alias = rx.header.track_alias
        sub = self._rx_aliases.get(alias)
        if sub is not None:
            self._bind(rx, sub)
        elif alias in self._dead_aliases:
            self._drop_rx(rx)
        else:
            rx.deadline = self._now + self._alias_wait
            self._waiting[rx.stream_id] = rx

    def _bind(self, rx: _RxStream, sub: SubReq) -> None:
        if (
            sub.state is State.DONE
            and sub.done_stream_count is not None
            and sub.streams_seen >= sub.done_stream_count
        ):
            # "PUBLISH_DONE": more streams than Stream Count MAY close the session; we
            # drop the stream instead.
            self._drop_rx(rx)
            return
        rx.sub = sub
        rx.deadline = None
        sub.streams_seen += 1
        header = rx.header
        assert header is not None
        self._emit(
            SubgroupStreamOpened(
                sub.request_id,
                rx.stream_id,
                header.group_id,
                header.subgroup_id,
                sub.default_priority
                if header.publisher_priority is None
                else header.publisher_priority,
                header.end_of_group,
            )
        )

    def _rx_fetch_header(self, rx: _RxStream, header: FetchHeader) -> None:
        req = self._requests.get(header.request_id)
        if req is None:
            if self._issued(header.request_id) and header.request_id % 2 == self._next_local_id % 2:
                self._drop_rx(rx)  # a fetch we cancelled or that failed
                return
            raise ProtocolViolation(f"fetch stream for unknown request {header.request_id}")
        if not isinstance(req, FetchReq) or not req.ours:
            raise ProtocolViolation(f"fetch stream for request {header.request_id}, not our FETCH")
        if req.stream_id is not None:
            raise ProtocolViolation(f"second fetch stream for request {header.request_id}")
        req.stream_id = rx.stream_id
        rx.fetch = req

    def _deliver(self, rx: _RxStream, obj: Object) -> None:
        if rx.fetch is not None:
            self._emit(
                ObjectReceived(
                    rx.fetch.request_id,
                    None,
                    obj.group_id,
                    obj.subgroup_id,
                    obj.object_id,
                    128 if obj.publisher_priority is None else obj.publisher_priority,
                    obj.status,
                    obj.payload,
                    obj.extensions,
                    ObjectSource.FETCH,
                    rx.stream_id,
                )
            )
            return
        sub = rx.sub
        assert sub is not None and sub.track_alias is not None
        self._emit(
            ObjectReceived(
                sub.request_id,
                sub.track_alias,
                obj.group_id,
                obj.subgroup_id,
                obj.object_id,
                sub.default_priority if obj.publisher_priority is None else obj.publisher_priority,
                obj.status,
                obj.payload,
                obj.extensions,
                ObjectSource.SUBGROUP,
                rx.stream_id,
            )
        )

    def _hold(self, rx: _RxStream, obj: Object) -> None:
        size = len(obj.payload) + 64
        if self._held_bytes + size > MAX_HELD_BYTES:
            self._drop_rx(rx)
            return
        self._held_bytes += size
        rx.held.append(obj)

    def _release_held(self, rx: _RxStream) -> None:
        held, rx.held = rx.held, []
        self._held_bytes -= sum(len(o.payload) + 64 for o in held)
        return_fin = rx.held_fin
        for obj in held:
            self._deliver(rx, obj)
            if self._closed:
                return
        if return_fin:
            self._rx_fin(rx)

    def _rx_fin(self, rx: _RxStream) -> None:
        if rx.sub is None and rx.fetch is None:
            if rx.header is not None and rx.deadline is not None:
                rx.held_fin = True  # keep until the alias is known or the wait ends
                return
            self._rx_streams.pop(rx.stream_id, None)
            return
        self._rx_streams.pop(rx.stream_id, None)
        if rx.fetch is not None:
            req = rx.fetch
            self._emit(FetchStreamEnded(req.request_id, rx.stream_id))
            # "Fetch State Management": FETCH state ends with the stream's FIN.
            if self._requests.get(req.request_id) is req:
                self._finish(req)
            return
        sub = rx.sub
        assert sub is not None and rx.header is not None
        self._emit(
            SubgroupStreamEnded(sub.request_id, rx.stream_id, rx.header.group_id, _subgroup_of(rx))
        )

    def _drop_rx(self, rx: _RxStream) -> None:
        """Abandon an incoming stream: STOP_SENDING and ignore the rest of it."""
        self._rx_streams.pop(rx.stream_id, None)
        if rx.held:
            self._held_bytes -= sum(len(o.payload) + 64 for o in rx.held)
            rx.held = []
        self._ignore_stream(rx.stream_id, _CANCELLED)

    def _uni_reset(self, stream_id: int, error_code: int) -> None:
        rx = self._rx_streams.pop(stream_id, None)
        if rx is None:
            return
        if rx.held:
            self._held_bytes -= sum(len(o.payload) + 64 for o in rx.held)
            rx.held = []
        if rx.fetch is not None:
            req = rx.fetch
            self._emit(FetchStreamReset(req.request_id, stream_id, error_code))
            if self._requests.get(req.request_id) is req:
                self._finish(req)
        elif rx.sub is not None and rx.header is not None:
            self._emit(
                SubgroupStreamReset(
                    rx.sub.request_id, stream_id, rx.header.group_id, _subgroup_of(rx), error_code
                )
            )

    # --- incoming datagrams --------------------------------------------------------------

    def _datagram(self, data: bytes) -> None:
        dgram = decode_datagram(data, self._v(), max_object_size=self._max_object_size)
        sub = self._rx_aliases.get(dgram.track_alias)
        if sub is not None:
            self._deliver_datagram(sub, dgram)
        elif dgram.track_alias not in self._dead_aliases:
            if len(self._held_datagrams) >= MAX_HELD_DATAGRAMS:
                self._held_datagrams.pop(0)
            self._held_datagrams.append((self._now + self._alias_wait, dgram))

    def _deliver_datagram(self, sub: SubReq, dgram: ObjectDatagram) -> None:
        obj = dgram.object
        self._emit(
            ObjectReceived(
                sub.request_id,
                dgram.track_alias,
                obj.group_id,
                None,
                obj.object_id,
                sub.default_priority if obj.publisher_priority is None else obj.publisher_priority,
                obj.status,
                obj.payload,
                obj.extensions,
                ObjectSource.DATAGRAM,
                None,
                dgram.end_of_group,
            )
        )

    # --- alias life cycle (called by the control handlers) ---------------------------------

    def _alias_ready(self, sub: SubReq) -> None:
        alias = sub.track_alias
        assert alias is not None
        self._dead_aliases.pop(alias, None)
        for rx in list(self._rx_streams.values()):
            if rx.sub is None and rx.header is not None and rx.header.track_alias == alias:
                self._bind(rx, sub)
                if rx.sub is sub:
                    self._release_held(rx)
                if self._closed:
                    return
        keep: list[tuple[float, ObjectDatagram]] = []
        for deadline, dgram in self._held_datagrams:
            if dgram.track_alias == alias:
                self._deliver_datagram(sub, dgram)
            else:
                keep.append((deadline, dgram))
        self._held_datagrams = keep

    def _forget_rx_alias(self, sub: SubReq) -> None:
        """Stop routing data to ``sub``: its open streams are abandoned, late data dropped."""
        alias = sub.track_alias
        self._lingering.pop(sub.request_id, None)
        if alias is None or self._rx_aliases.get(alias) is not sub:
            return
        del self._rx_aliases[alias]
        self._dead_aliases[alias] = None
        while len(self._dead_aliases) > MAX_DEAD_ALIASES:
            del self._dead_aliases[next(iter(self._dead_aliases))]
        for rx in list(self._rx_streams.values()):
            if rx.sub is sub:
                self._drop_rx(rx)

    def _drop_subscription(self, sub: SubReq) -> None:
        if sub.receiving:
            self._forget_rx_alias(sub)
            return
        for handle in list(sub.open_handles.values()):
            self._reset_tx(handle, _CANCELLED)
        if sub.track_alias is not None and self._tx_aliases.get(sub.track_alias) is sub:
            del self._tx_aliases[sub.track_alias]

    def _drop_fetch(self, req: FetchReq) -> None:
        if req.ours:
            if req.stream_id is not None:
                rx = self._rx_streams.get(req.stream_id)
                if rx is not None:
                    self._drop_rx(rx)
        elif req.handle is not None and not req.handle.closed:
            self._reset_tx(req.handle, _CANCELLED)

    def _publish_done_received(self, sub: SubReq, stream_count: int) -> None:
        sub.done_stream_count = stream_count
        sub.done_deadline = self._now + self._done_linger
        self._finish(sub)  # frees the request; the alias stays until the streams are in
        # "PUBLISH_DONE": keep routing late streams and datagrams for a while (streams
        # beyond Stream Count are dropped in _bind); the timer forgets the alias.
        self._lingering[sub.request_id] = sub

    # --- outgoing data ---------------------------------------------------------------------

    def _reset_tx(self, handle: SubgroupHandle | FetchHandle, code: int) -> None:
        if handle.closed:
            return
        handle._closed = True
        tx = self._tx_streams.pop(handle.stream_id, None)
        if tx is not None and tx.sub is not None:
            tx.sub.open_handles.pop(handle.stream_id, None)
        if not self._closed:
            self._transport.reset_stream(handle.stream_id, code)

    def _stop_sending(self, stream_id: int, error_code: int) -> None:
        tx = self._tx_streams.get(stream_id)
        if tx is None:
            return
        handle = tx.handle
        # "Closing Subgroup Streams": the publisher SHOULD answer STOP_SENDING with a reset.
        self._reset_tx(handle, _CANCELLED)
        if isinstance(handle, SubgroupHandle):
            self._emit(
                SubgroupStreamStopped(
                    handle.request_id, stream_id, handle.group_id, handle.subgroup_id, error_code
                )
            )
        elif tx.fetch is not None:
            self._fetch_stream_closed(tx.fetch)

    def _fetch_stream_closed(self, req: FetchReq) -> None:
        """The publisher may forget a FETCH once it is answered and its stream is closed."""
        if req.answered and self._requests.get(req.request_id) is req:
            self._finish(req)

    def _all_handles(self) -> list[SubgroupHandle | FetchHandle]:
        return [tx.handle for tx in self._tx_streams.values()]

    # --- helpers for the public API -------------------------------------------------------

    def _sending_sub(self, request_id: int, what: str) -> SubReq:
        """The subscription ``request_id`` we publish and may send objects on."""
        sub = self._requests.get(request_id)
        if (
            not isinstance(sub, SubReq)
            or sub.receiving
            or sub.track_alias is None
            or sub.state is State.DONE
        ):
            raise LocalError(f"{what}: {request_id} is not an accepted SUBSCRIBE or our PUBLISH")
        return sub

    def _receiving_sub(self, request_id: int, what: str) -> SubReq:
        """A live subscription we receive: our SUBSCRIBE or the peer's PUBLISH."""
        sub = self._requests.get(request_id)
        if not isinstance(sub, SubReq) or not sub.receiving or sub.state is State.DONE:
            raise LocalError(f"{what}: {request_id} is not a subscription we receive")
        return sub

    def _end_publishing(self, sub: SubReq, code: PublishDoneCode | int, reason: str) -> None:
        """PUBLISH_DONE after resetting the subscription's open streams ("PUBLISH_DONE":
        not before every stream is closed)."""
        for handle in list(sub.open_handles.values()):
            self._reset_tx(handle, _CANCELLED)
        wire = publish_done_to_wire(code, self._draft16)
        self._send(m.PublishDone(sub.request_id, wire, sub.streams_opened, reason))
        self._end_request(sub)

    def _ns_target(
        self, request_id: int, namespace: Namespace, what: str
    ) -> SubNamespaceReq | None:
        if not self._draft16:
            raise LocalError(f"{what} is draft-16 only (draft-14 uses PUBLISH_NAMESPACE)")
        req = self._peers(request_id, SubNamespaceReq, what)
        if req is None:
            return None
        if req.state is not State.ESTABLISHED:
            raise LocalError(f"{what}: SUBSCRIBE_NAMESPACE {request_id} is not accepted")
        if namespace[: len(req.prefix)] != req.prefix or len(namespace) == len(req.prefix) == 0:
            raise LocalError(f"{what}: {namespace!r} is not under the prefix {req.prefix!r}")
        validate_namespace(namespace)
        return req

    def _on_stream_reset(self, stream_id: int, error_code: int) -> None:
        if stream_id == self._control_stream:
            raise ProtocolViolation("the peer reset the control stream")
        if stream_id in self._early:
            held = self._early.pop(stream_id)
            self._early_bytes -= len(held.data)
            return
        if stream_id in self._ns_streams or stream_id in self._ns_bufs:
            self._ns_stream_ended(stream_id, reset=True)
            return
        self._ignored_streams.discard(stream_id)
        self._uni_reset(stream_id, error_code)

    def _on_stop_sending(self, stream_id: int, error_code: int) -> None:
        if stream_id == self._control_stream:
            raise ProtocolViolation("the peer stopped reading the control stream")
        if stream_id in self._ns_streams:
            return  # the peer no longer reads a namespace stream; its FIN/reset follows
        self._stop_sending(stream_id, error_code)

    # --- timers ----------------------------------------------------------------------------

    def _waiting_rx(self) -> list[_RxStream]:
        """Streams still waiting for their alias (drops entries that stopped waiting)."""
        live = [
            rx
            for rx in self._waiting.values()
            if rx.deadline is not None and self._rx_streams.get(rx.stream_id) is rx
        ]
        if len(live) != len(self._waiting):
            self._waiting = {rx.stream_id: rx for rx in live}
        return live

    def _data_deadlines(self) -> list[float]:
        out = [rx.deadline for rx in self._waiting_rx() if rx.deadline is not None]
        out += [deadline for deadline, _ in self._held_datagrams[:1]]
        out += [s.done_deadline for s in self._lingering.values() if s.done_deadline is not None]
        return out

    def _data_timer(self, now: float) -> None:
        for rx in self._waiting_rx():
            if rx.deadline is not None and now >= rx.deadline:
                self._drop_rx(rx)  # the alias never appeared
        self._held_datagrams = [(d, g) for d, g in self._held_datagrams if d > now]
        for sub in list(self._lingering.values()):
            if sub.done_deadline is not None and now >= sub.done_deadline:
                self._forget_rx_alias(sub)
