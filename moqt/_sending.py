"""The Session's outgoing data: subgroup streams, datagrams and fetch streams
(public methods of :class:`~moqt.session.Session`)."""

from __future__ import annotations

from ._apiutil import local_errors
from ._dataplane import DataPlaneMixin, _TxStream
from ._handles import FetchHandle, SubgroupHandle
from ._state import (
    FetchReq,
)
from .data import (
    FetchWriter,
    Object,
    ObjectDatagram,
    SubgroupHeader,
    SubgroupWriter,
    encode_datagram,
)
from .errors import (
    DataStreamResetCode,
    LocalError,
)
from .types import (
    Extensions,
    ObjectStatus,
)

__all__ = ["SendingMixin"]

_CANCELLED = int(DataStreamResetCode.CANCELLED)


class SendingMixin(DataPlaneMixin):
    """open_subgroup / write_object / send_object_datagram / open_fetch_stream ..."""

    # --- data out ----------------------------------------------------------------------

    @local_errors
    def open_subgroup(
        self,
        request_id: int,
        group_id: int,
        subgroup_id: int = 0,
        *,
        priority: int | None = 128,
        extensions: bool = True,
        end_of_group: bool = False,
    ) -> SubgroupHandle:
        """Open a subgroup stream for subscription ``request_id`` (accepted SUBSCRIBE or
        our PUBLISH) and write its SUBGROUP_HEADER.  ``priority`` is the publisher
        priority (None = inherit the track's default: draft-16 only).  ``extensions``
        False uses a header type without per-object extension fields.
        ``end_of_group`` marks that this subgroup holds the group's last object."""
        sub = self._sending_sub(request_id, "open_subgroup")
        if priority is None and not self._draft16:
            raise LocalError("draft-14 subgroup headers always carry a publisher priority")
        if priority is not None and not 0 <= priority <= 255:
            raise LocalError("publisher priority is 0..255")
        assert sub.track_alias is not None
        header = SubgroupHeader.for_subgroup(
            sub.track_alias,
            group_id,
            subgroup_id,
            priority,
            extensions_present=extensions,
            end_of_group=end_of_group,
        )
        writer = SubgroupWriter(header, self._v())
        if self._closed:
            handle = SubgroupHandle(
                stream_id=-1,
                request_id=request_id,
                track_alias=sub.track_alias,
                group_id=group_id,
                subgroup_id=subgroup_id,
                publisher_priority=priority,
                extensions_present=extensions,
            )
            handle._closed = True
            return handle
        stream_id = self._transport.open_stream(unidirectional=True)
        handle = SubgroupHandle(
            stream_id=stream_id,
            request_id=request_id,
            track_alias=sub.track_alias,
            group_id=group_id,
            subgroup_id=subgroup_id,
            publisher_priority=priority,
            extensions_present=extensions,
        )
        self._transport.set_stream_priority(
            stream_id, priority if priority is not None else sub.default_priority
        )
        self._transport.send_stream_data(stream_id, writer.header_bytes())
        sub.streams_opened += 1
        self._counters[6] += 1
        sub.open_handles[stream_id] = handle
        self._tx_streams[stream_id] = _TxStream(handle, writer, sub=sub)
        return handle

    @local_errors
    def write_object(
        self,
        handle: SubgroupHandle,
        object_id: int,
        payload: bytes,
        *,
        extensions: Extensions = (),
        status: ObjectStatus = ObjectStatus.NORMAL,
    ) -> None:
        """Write one object; ids must increase within the stream.  A non-NORMAL
        ``status`` needs an empty payload.  Dropped quietly if the handle is closed by
        the peer/session (STOP_SENDING, UNSUBSCRIBE, close)."""
        if handle.closed:
            return
        tx = self._tx_streams.get(handle.stream_id)
        if tx is None or tx.handle is not handle or not isinstance(tx.writer, SubgroupWriter):
            raise LocalError("not an open subgroup handle of this session")
        if handle.last_object_id is not None and object_id <= handle.last_object_id:
            raise LocalError(
                f"object {object_id} after object {handle.last_object_id}: ids must increase"
            )
        if extensions and not handle.extensions_present:
            raise LocalError("this subgroup stream was opened without extensions")
        if status is not ObjectStatus.NORMAL and payload:
            raise LocalError("an object with a status has no payload")
        data = tx.writer.write_object(object_id, payload, extensions=extensions, status=status)
        handle._last_object_id = object_id
        self._counters[2] += 1
        self._counters[3] += len(payload)
        self._transport.send_stream_data(handle.stream_id, data)

    @local_errors
    def end_subgroup(self, handle: SubgroupHandle) -> None:
        """FIN the subgroup stream (every object was written)."""
        if handle.closed:
            return
        tx = self._tx_streams.pop(handle.stream_id, None)
        if tx is None or tx.handle is not handle:
            raise LocalError("not an open subgroup handle of this session")
        handle._closed = True
        if tx.sub is not None:
            tx.sub.open_handles.pop(handle.stream_id, None)
        self._transport.send_stream_data(handle.stream_id, b"", True)

    @local_errors
    def reset_subgroup(
        self, handle: SubgroupHandle, code: int = DataStreamResetCode.CANCELLED
    ) -> None:
        """RESET_STREAM the subgroup stream."""
        if handle.closed:
            return
        if self._tx_streams.get(handle.stream_id) is None:
            raise LocalError("not an open subgroup handle of this session")
        self._reset_tx(handle, int(code))

    @local_errors
    def send_object_datagram(
        self,
        request_id: int,
        group_id: int,
        object_id: int,
        payload: bytes,
        *,
        priority: int | None = 128,
        extensions: Extensions = (),
        status: ObjectStatus = ObjectStatus.NORMAL,
        end_of_group: bool = False,
    ) -> None:
        """Send one object as OBJECT_DATAGRAM for subscription ``request_id``."""
        sub = self._sending_sub(request_id, "send_object_datagram")
        if self._closed:
            return
        assert sub.track_alias is not None
        if priority is None and not self._draft16:
            raise LocalError("draft-14 datagrams always carry a publisher priority")
        dgram = ObjectDatagram(
            sub.track_alias,
            Object(group_id, None, object_id, priority, payload, tuple(extensions), status),
            end_of_group,
        )
        self._transport.send_datagram(encode_datagram(dgram, self._v()))
        self._counters[2] += 1
        self._counters[3] += len(payload)

    @local_errors
    def open_fetch_stream(self, request_id: int) -> FetchHandle:
        """Open the stream answering the peer's FETCH ``request_id`` (FETCH_HEADER)."""
        req = self._requests.get(request_id)
        if not isinstance(req, FetchReq) or req.ours:
            if self._issued(request_id) and request_id % 2 != self._next_local_id % 2:
                handle = FetchHandle(stream_id=-1, request_id=request_id)
                handle._closed = True  # the fetch was cancelled meanwhile
                return handle
            raise LocalError(f"request {request_id} is not a FETCH of the peer")
        if req.handle is not None:
            raise LocalError(f"FETCH {request_id} already has its stream")
        writer = FetchWriter(request_id, self._v())
        if self._closed:
            handle = FetchHandle(stream_id=-1, request_id=request_id)
            handle._closed = True
            return handle
        stream_id = self._transport.open_stream(unidirectional=True)
        handle = FetchHandle(stream_id=stream_id, request_id=request_id)
        req.handle = handle
        self._transport.set_stream_priority(stream_id, req.priority)
        self._transport.send_stream_data(stream_id, writer.header_bytes())
        self._tx_streams[stream_id] = _TxStream(handle, writer, fetch=req)
        return handle

    @local_errors
    def write_fetch_object(
        self,
        handle: FetchHandle,
        group_id: int,
        subgroup_id: int | None,
        object_id: int,
        payload: bytes,
        *,
        priority: int = 128,
        extensions: Extensions = (),
        status: ObjectStatus = ObjectStatus.NORMAL,
    ) -> None:
        """Write one fetched object (``subgroup_id`` None = it was a datagram object).
        Dropped quietly if the fetch was cancelled or the session closed."""
        if handle.closed:
            return
        tx = self._tx_streams.get(handle.stream_id)
        if tx is None or tx.handle is not handle or not isinstance(tx.writer, FetchWriter):
            raise LocalError("not an open fetch handle of this session")
        obj = Object(group_id, subgroup_id, object_id, priority, payload, tuple(extensions), status)
        self._transport.send_stream_data(handle.stream_id, tx.writer.write_object(obj))
        self._counters[2] += 1
        self._counters[3] += len(payload)

    @local_errors
    def end_fetch_stream(self, handle: FetchHandle) -> None:
        """FIN the fetch stream: every available object in the range was written."""
        if handle.closed:
            return
        tx = self._tx_streams.pop(handle.stream_id, None)
        if tx is None or tx.handle is not handle:
            raise LocalError("not an open fetch handle of this session")
        handle._closed = True
        self._transport.send_stream_data(handle.stream_id, b"", True)
        if tx.fetch is not None:
            self._fetch_stream_closed(tx.fetch)

    @local_errors
    def reset_fetch_stream(
        self, handle: FetchHandle, code: int = DataStreamResetCode.CANCELLED
    ) -> None:
        """RESET_STREAM the fetch stream."""
        if handle.closed:
            return
        tx = self._tx_streams.get(handle.stream_id)
        if tx is None or tx.handle is not handle:
            raise LocalError("not an open fetch handle of this session")
        self._reset_tx(handle, int(code))
        if tx.fetch is not None:
            self._fetch_stream_closed(tx.fetch)
