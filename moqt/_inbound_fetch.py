"""FETCH and TRACK_STATUS from the peer, and the answers to ours."""

from __future__ import annotations

from . import messages as m
from ._replies import DEFAULT_PRIORITY, RequestsMixin
from ._state import (
    FetchReq,
    State,
    SubReq,
    TrackStatusReq,
)
from .errors import ProtocolViolation, RequestErrorCode
from .events import (
    FetchAccepted,
    FetchCancelled,
    FetchRequested,
    TrackStatusReceived,
    TrackStatusRequested,
)
from .types import (
    FetchType,
    FilterType,
    GroupOrder,
    Location,
)

__all__ = ["FetchHandlers"]


class FetchHandlers(RequestsMixin):
    # --- FETCH ---------------------------------------------------------------------------------

    def _h_fetch(self, msg: m.Fetch) -> None:
        self._check_new_peer_request(msg.request_id)
        tokens = self._tokens_of(msg.parameters)
        req = FetchReq(
            msg.request_id,
            ours=False,
            fetch_type=msg.fetch_type,
            priority=DEFAULT_PRIORITY
            if msg.subscriber_priority is None
            else msg.subscriber_priority,
            group_order=msg.group_order or GroupOrder.ASCENDING,
        )
        self._requests[req.request_id] = req
        joining_start: int | None = None
        if msg.standalone is not None:
            req.namespace, req.name = msg.standalone.namespace, msg.standalone.name
            req.start, req.end = msg.standalone.start, msg.standalone.end
        else:
            assert msg.joining is not None
            joining_start = msg.joining.joining_start
            req.joining_request_id = msg.joining.joining_request_id
            joined = self._requests.get(req.joining_request_id)
            if not (
                isinstance(joined, SubReq)
                and not joined.receiving
                and not joined.is_publish
                and joined.state in (State.PENDING, State.ESTABLISHED)
            ):
                # "Joining Fetches": not an Established/Pending subscription of this session.
                self._reject_peer(
                    req, RequestErrorCode.INVALID_JOINING_REQUEST_ID, "no such subscription"
                )
                return
            original = joined.original_filter
            if original is None or original.type is not FilterType.LARGEST_OBJECT:
                raise ProtocolViolation(
                    "joining FETCH for a subscription without a LargestObject filter"
                )
            req.namespace, req.name = joined.namespace, joined.name
            if joined.state is State.ESTABLISHED:
                largest = joined.largest
                if largest is None:
                    self._reject_peer(
                        req, RequestErrorCode.INVALID_RANGE, "the track has no objects yet"
                    )
                    return
                # "Joining Fetch Range Calculation".
                if msg.fetch_type is FetchType.RELATIVE_JOINING:
                    req.start = Location(max(0, largest.group - joining_start), 0)
                else:
                    req.start = Location(joining_start, 0)
                req.end = Location(largest.group, largest.object + 1)
        self._emit(
            FetchRequested(
                req.request_id,
                req.fetch_type,
                req.namespace,
                req.name,
                req.start,
                req.end,
                req.priority,
                req.group_order,
                req.joining_request_id,
                joining_start,
                tokens,
            )
        )

    def _h_fetch_ok(self, msg: m.FetchOk) -> None:
        req = self._lookup(msg.request_id, FetchReq, what="FETCH_OK")
        if req is None:
            return
        if not req.ours:
            raise ProtocolViolation("FETCH_OK for the peer's own FETCH")
        if req.answered:
            raise ProtocolViolation(f"second answer to FETCH {req.request_id}")
        if (
            req.start is not None
            and msg.end < req.start
            and not (msg.end.object == 0 and msg.end.group >= req.start.group)
        ):
            # FETCH_OK: an End Location smaller than the Start Location is a violation
            # (object 0 means the whole group, so {g, 0} covers a start inside group g).
            raise ProtocolViolation("FETCH_OK end location is before the fetch's start")
        req.answered = True
        req.state = State.ESTABLISHED
        order = msg.group_order or req.group_order
        if order is GroupOrder.ORIGINAL:
            order = GroupOrder.ASCENDING
        self._emit(
            FetchAccepted(
                req.request_id, msg.end_of_track, msg.end, order, msg.track_extensions.items
            )
        )

    def _h_fetch_cancel(self, msg: m.FetchCancel) -> None:
        req = self._lookup(msg.request_id, FetchReq, what="FETCH_CANCEL")
        if req is None:
            return
        if req.ours:
            raise ProtocolViolation("FETCH_CANCEL for our own FETCH")
        self._emit(FetchCancelled(req.request_id))
        self._end_request(req)

    # --- TRACK_STATUS ---------------------------------------------------------------------------

    def _h_track_status(self, msg: m.TrackStatus) -> None:
        self._check_new_peer_request(msg.request_id)
        tokens = self._tokens_of(msg.parameters)
        req = TrackStatusReq(msg.request_id, ours=False, namespace=msg.namespace, name=msg.name)
        self._requests[req.request_id] = req
        self._emit(TrackStatusRequested(req.request_id, req.namespace, req.name, tokens))

    def _h_track_status_ok(self, msg: m.TrackStatusOk) -> None:
        req = self._lookup(msg.request_id, TrackStatusReq, what="TRACK_STATUS_OK")
        if req is None:
            return
        if not req.ours:
            raise ProtocolViolation("TRACK_STATUS_OK for the peer's own TRACK_STATUS")
        self._emit(
            TrackStatusReceived(
                req.request_id,
                msg.largest,
                msg.expires or 0,
                msg.group_order or GroupOrder.ASCENDING,
            )
        )
        self._finish(req)
