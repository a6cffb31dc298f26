"""Downstream subscriptions as the wire sees them: SUBSCRIBE_OK, our PUBLISH to a
namespace watcher, REQUEST_UPDATE and PUBLISH_OK.

Each function builds or changes one :class:`~mesh.relay._track.Subscription`;
the track owns it from :meth:`Track.add_subscriber` on, and it ends only
through :meth:`Subscription.end`.
"""

from __future__ import annotations

import structlog

from moqt.errors import LocalError, PublishDoneCode
from moqt.events import PublishAccepted, SubscribeRequested, SubscriptionUpdated
from moqt.messages import TrackExtensions
from moqt.session import Session
from moqt.types import Extensions, FilterType, GroupOrder, Location
from moqt.version import DRAFT_16

from ._peer import Peer, call_peer
from ._track import Subscription, Track, filter_window

__all__ = [
    "accept_subscription",
    "delivery_timeout",
    "forwarded_extensions",
    "publish_to",
    "update_from_publish_ok",
    "update_subscription",
]

logger = structlog.get_logger("mesh.relay")


def accept_subscription(
    peer: Peer, track: Track, ev: SubscribeRequested, now: float
) -> Subscription | None:
    """SUBSCRIBE_OK to ``ev`` on the live ``track`` and the subscription (None when the
    session refused to send it). Replaces what we offered the peer with PUBLISH."""
    largest = track.largest
    start, end_group = filter_window(ev.filter, largest)
    upstream = track.upstream
    group_order = upstream.group_order if upstream is not None else GroupOrder.ASCENDING
    if group_order == GroupOrder.ORIGINAL:
        group_order = GroupOrder.ASCENDING
    extensions = track_extensions(track)
    try:
        peer.session.accept_subscribe(
            ev.request_id,
            largest=largest,
            group_order=group_order,
            extensions=forwarded_extensions(peer.session, extensions),
        )
    except LocalError as exc:
        logger.warning("accept_failed", session=peer.name, error=str(exc))
        return None
    offered = [s for s in track.subscribers if s.peer is peer and s.via_publish]
    sub = Subscription(
        peer,
        ev.request_id,
        track,
        start,
        end_group,
        forward=ev.forward,
        joining_largest=largest,
    )
    track.add_subscriber(
        sub,
        now,
        subscriber_priority=ev.subscriber_priority,
        group_order=ev.group_order if ev.group_order != GroupOrder.ORIGINAL else group_order,
        delivery_timeout=delivery_timeout(ev.delivery_timeout, extensions),
    )
    for old in offered:
        # The peer subscribes to a track we offered it with PUBLISH: the SUBSCRIBE wins,
        # so nothing is delivered twice (the offer's streams are reset, not drained). Ended
        # after the new one joined, so the track is never unwatched in between.
        old.end(
            (PublishDoneCode.SUBSCRIPTION_ENDED, "replaced by the peer's SUBSCRIBE"), drain=False
        )
    return sub


def publish_to(peer: Peer, track: Track, now: float) -> None:
    """Offer the live ``track`` to a namespace watcher with PUBLISH (once per peer)."""
    if any(sub.peer is peer for sub in track.subscribers):
        return
    upstream = track.upstream
    assert upstream is not None
    largest = track.largest
    rid = call_peer(
        peer,
        peer.session.publish,
        track.namespace,
        track.name,
        largest=largest,
        group_order=upstream.group_order
        if upstream.group_order != GroupOrder.ORIGINAL
        else GroupOrder.ASCENDING,
        extensions=forwarded_extensions(peer.session, upstream.extensions),
    )
    if not isinstance(rid, int):
        return
    start = largest.next_object() if largest is not None else Location(0, 0)
    sub = Subscription(peer, rid, track, start, None, via_publish=True)
    track.add_subscriber(
        sub,
        now,
        group_order=upstream.group_order,
        delivery_timeout=delivery_timeout(None, upstream.extensions),
    )


def update_subscription(sub: Subscription, ev: SubscriptionUpdated) -> None:
    """REQUEST_UPDATE of a subscription: forward state, priority, timeout and window."""
    peer = sub.peer
    sub.forward = ev.forward
    peer.scheduler.set_subscriber_priority(ev.request_id, ev.subscriber_priority)
    peer.scheduler.set_delivery_timeout(
        ev.request_id, delivery_timeout(ev.delivery_timeout, track_extensions(sub.track))
    )
    if ev.filter.type in (FilterType.ABSOLUTE_START, FilterType.ABSOLUTE_RANGE):
        assert ev.filter.start is not None
        sub.start = ev.filter.start
    sub.end_group = ev.filter.end_group
    call_peer(peer, peer.session.accept_update, ev.update_request_id)


def update_from_publish_ok(sub: Subscription, ev: PublishAccepted) -> None:
    """PUBLISH_OK to our PUBLISH carries the subscriber's forward state, priority and
    delivery timeout."""
    peer = sub.peer
    sub.forward = ev.forward
    peer.scheduler.set_subscriber_priority(ev.request_id, ev.subscriber_priority)
    peer.scheduler.set_delivery_timeout(
        ev.request_id, delivery_timeout(ev.delivery_timeout, track_extensions(sub.track))
    )


def _seconds(milliseconds: int | None) -> float | None:
    """A DELIVERY_TIMEOUT parameter (ms) in seconds; draft-16 refuses 0 on the wire,
    draft-14 gives it no meaning: no timeout."""
    return milliseconds / 1000 if milliseconds else None


def forwarded_extensions(session: Session, extensions: Extensions) -> Extensions:
    """The upstream's Track Extensions for a downstream SUBSCRIBE_OK or PUBLISH: draft-16
    "Extension Headers" - unsupported ones "MUST NOT be modified, MUST be cached as part
    of the Track ... and MUST be forwarded by relays". Draft-14 carries none."""
    return extensions if session.version == DRAFT_16 else ()


def delivery_timeout(parameter_ms: int | None, extensions: Extensions) -> float | None:
    """The subscription's delivery timeout in seconds: draft-16 "If both the subscriber
    specifies this parameter and the Track has a DELIVERY_TIMEOUT extension, the
    endpoints use the min of the two values"; None when neither gave one."""
    track_ms = TrackExtensions(extensions).delivery_timeout
    timeouts = [t for t in (_seconds(parameter_ms), _seconds(track_ms)) if t is not None]
    return min(timeouts) if timeouts else None


def track_extensions(track: Track) -> Extensions:
    """The Track Extensions of ``track``'s current upstream (none without one)."""
    upstream = track.upstream
    return upstream.extensions if upstream is not None else ()
