"""FETCH and TRACK_STATUS, answered from the relay's cache."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from moqt.errors import LocalError, RequestErrorCode
from moqt.events import FetchRequested, TrackStatusRequested
from moqt.types import GroupOrder

from ._peer import Peer, call_peer
from ._registry import TrackRegistry
from ._track import joining_range

__all__ = ["Reject", "answer_fetch", "answer_track_status"]

logger = structlog.get_logger("mesh.relay")

# relay._reject(peer, request_id, code, reason)
Reject = Callable[[Peer, int, int, str], None]


def answer_fetch(tracks: TrackRegistry, peer: Peer, ev: FetchRequested, reject: Reject) -> None:
    """Standalone and joining FETCH: FETCH_OK and one stream of what the cache holds."""
    start, end = ev.start, ev.end
    joined = ev.joining_request_id
    if joined is not None and (start is None or end is None):
        # The FETCH came in the same read as its SUBSCRIBE, before we answered that.
        if joined in peer.waiting:
            peer.deferred_fetches.setdefault(joined, []).append(ev)
            return
        sub = peer.downstream.get(joined)
        if sub is not None and sub.joining_largest is not None:
            start, end = joining_range(ev, sub.joining_largest)
    track = tracks.get(ev.namespace, ev.name)
    if track is None:
        reject(peer, ev.request_id, RequestErrorCode.DOES_NOT_EXIST, "no such track")
        return
    if start is None or end is None:
        reject(
            peer,
            ev.request_id,
            RequestErrorCode.INVALID_RANGE,
            "the joined subscription has no objects before it",
        )
        return
    largest = track.cache.largest
    if largest is None or start > largest:
        reject(peer, ev.request_id, RequestErrorCode.INVALID_RANGE, "range not available")
        return
    try:
        track.serve_fetch(
            peer.session, ev.request_id, start, end,
            descending=ev.group_order == GroupOrder.DESCENDING,
        )  # fmt: skip
    except LocalError as exc:
        logger.warning("fetch_failed", session=peer.name, error=str(exc))


def answer_track_status(
    tracks: TrackRegistry, peer: Peer, ev: TrackStatusRequested, reject: Reject
) -> None:
    track = tracks.get(ev.namespace, ev.name)
    if track is None or (track.upstream is None and track.cache.largest is None):
        reject(peer, ev.request_id, RequestErrorCode.DOES_NOT_EXIST, "no such track")
        return
    call_peer(peer, peer.session.answer_track_status, ev.request_id, largest=track.largest)
