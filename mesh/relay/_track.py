"""One track in the relay: its upstream, its cache and its downstream subscribers.

The forwarder half of moxygen's ``MoQRelay``: every object that arrives from
the single upstream subscription goes into the :class:`TrackCache` once and
out to each subscriber whose filter wants it, on a subgroup stream of that
subscriber's session mirroring the upstream one (same group and subgroup,
ended when the upstream stream ends, reset when it is reset).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from moqt.errors import LocalError, PublishDoneCode
from moqt.events import FetchRequested, SubscribeRequested
from moqt.session import Session
from moqt.types import (
    Extensions,
    FetchType,
    FilterType,
    GroupOrder,
    Location,
    Namespace,
    ObjectStatus,
    SubscriptionFilter,
    TrackName,
)
from moqt.version import DRAFT_16

from ._cache import CachedObject, CacheLimits, TrackCache

if TYPE_CHECKING:
    from ._peer import Peer
    from ._scheduler import SubscriberScheduler

__all__ = [
    "Subscription",
    "Track",
    "Upstream",
    "UpstreamKind",
    "filter_window",
    "joining_range",
]

logger = structlog.get_logger("mesh.relay")


class UpstreamKind(enum.Enum):
    SUBSCRIBE = "subscribe"  # we subscribed to an announcing publisher
    PUBLISH = "publish"  # the publisher pushed the track with PUBLISH


@dataclass(slots=True)
class Upstream:
    peer: Peer
    request_id: int
    kind: UpstreamKind
    live: bool = False
    largest: Location | None = None
    group_order: GroupOrder = GroupOrder.ASCENDING
    # The track's draft-16 Track Extensions as the upstream sent them (PUBLISH or
    # SUBSCRIBE_OK): cached with the track and forwarded to every subscriber.
    extensions: Extensions = ()
    # Subgroup streams of this subscription that ended (FIN) or were reset.
    streams_finished: int = 0
    # PUBLISH_DONE arrived: (code, reason, stream count, deadline); the relay ends the
    # track downstream once that many streams finished or the deadline passed.
    done: tuple[int, str, int, float] | None = None
    # No subscriber left: unsubscribe at this time unless one arrives (upstream linger).
    release_at: float | None = None


@dataclass(slots=True, eq=False)
class Subscription:
    """One downstream subscription: the peer's SUBSCRIBE, or our PUBLISH to the peer.

    Owned by its :class:`Track` (``track.subscribers``) and indexed by its peer
    (``peer.downstream[request_id]``); :meth:`end` is the one way it ends."""

    peer: Peer
    request_id: int
    track: Track
    start: Location
    end_group: int | None
    forward: bool = True
    via_publish: bool = False
    # Largest Location we put in SUBSCRIBE_OK: joining fetches are computed from it.
    joining_largest: Location | None = None
    ended: bool = False

    @property
    def session(self) -> Session:
        return self.peer.session

    @property
    def scheduler(self) -> SubscriberScheduler:
        return self.peer.scheduler

    def wants(self, loc: Location) -> bool:
        if not self.forward or loc < self.start:
            return False
        return self.end_group is None or loc.group <= self.end_group

    def end(self, done: tuple[int, str] | None = None, *, drain: bool = True) -> None:
        """End this subscription everywhere (see :meth:`Track.end_subscription`)."""
        self.track.end_subscription(self, done, drain=drain)


class Track:
    """A track: its upstream, its cache, its subscriptions and the SUBSCRIBEs waiting
    for its upstream. ``on_unwatched`` is called whenever the last of those ends (the
    relay then releases the upstream, see ``Relay._release_if_unwatched``)."""

    def __init__(
        self,
        namespace: Namespace,
        name: TrackName,
        limits: CacheLimits,
        on_unwatched: Callable[[Track], None] | None = None,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self._limits = limits
        self._on_unwatched = on_unwatched
        self.cache = TrackCache(limits)
        self.upstream: Upstream | None = None
        self.subscribers: list[Subscription] = []
        # SUBSCRIBEs held until the upstream's SUBSCRIBE_OK, by (peer, request id);
        # the peer indexes them too (``peer.waiting``).
        self.waiting: dict[tuple[Peer, int], SubscribeRequested] = {}
        self.objects_out = 0
        self.bytes_out = 0
        self._log = logger.bind(track=self.label)

    @property
    def label(self) -> str:
        ns = "/".join(f.decode("utf-8", "replace") for f in self.namespace)
        return f"{ns}/{self.name.decode('utf-8', 'replace')}"

    @property
    def largest(self) -> Location | None:
        candidates = [
            loc
            for loc in (self.cache.largest, self.upstream.largest if self.upstream else None)
            if loc is not None
        ]
        return max(candidates) if candidates else None

    @property
    def live(self) -> bool:
        return self.upstream is not None and self.upstream.live

    @property
    def watched(self) -> bool:
        """Somebody subscribes to the track, or waits to."""
        return bool(self.subscribers or self.waiting)

    def restart_if_behind(self, largest: Location | None) -> None:
        """A new upstream whose Largest Location is behind our cache is a new run of the
        track (a restarted publisher): forget the old objects, or late joiners would
        start after objects that will never come again."""
        cached = self.cache.largest
        if cached is not None and (largest is None or largest < cached):
            self._log.info("track_restarted", cached_largest=f"{cached.group}/{cached.object}")
            self.cache = TrackCache(self._limits)

    # --- downstream --------------------------------------------------------------------

    def add_subscriber(
        self,
        sub: Subscription,
        now: float,
        *,
        subscriber_priority: int = 128,
        group_order: GroupOrder = GroupOrder.ASCENDING,
        delivery_timeout: float | None = None,
    ) -> None:
        """Attach ``sub`` (indexed by its peer, scheduled by its peer's scheduler) and
        replay what the cache holds from its start on."""
        assert sub.track is self
        sub.peer.downstream[sub.request_id] = sub
        sub.scheduler.add_track(
            sub.request_id,
            subscriber_priority=subscriber_priority,
            group_order=group_order,
            delivery_timeout=delivery_timeout,
        )
        self.subscribers.append(sub)
        if self.upstream is not None:
            self.upstream.release_at = None
        largest = self.cache.largest
        if largest is None or sub.start > largest:
            return
        for group_id in self.cache.group_ids():
            if group_id < sub.start.group:
                continue
            if sub.end_group is not None and group_id > sub.end_group:
                break
            group = self.cache.group(group_id)
            assert group is not None
            for subgroup_id, objects in group.subgroups().items():
                for obj in objects:
                    self._deliver(sub, obj, now)
                if subgroup_id is not None and subgroup_id in group.complete_subgroups:
                    sub.scheduler.end_subgroup(sub.request_id, group_id, subgroup_id, now)

    def end_subscription(
        self, sub: Subscription, done: tuple[int, str] | None = None, *, drain: bool = True
    ) -> None:
        """The one path that ends a subscription, whatever ended it: it leaves the track
        and its peer's index, its scheduler state goes (``drain``: what is queued of its
        newest group is written and its streams FIN'd; else they are reset), PUBLISH_DONE
        ``done`` = (code, reason) is sent when due, and a track nobody watches any more
        tells its owner (which releases the upstream). A closed peer's scheduler goes with
        the peer; a second call does nothing."""
        if sub.ended or sub.track is not self:
            return
        sub.ended = True
        if sub in self.subscribers:
            self.subscribers.remove(sub)
        peer = sub.peer
        if peer.downstream.get(sub.request_id) is sub:
            del peer.downstream[sub.request_id]
        if not peer.closed:
            if done is not None and drain:
                sub.scheduler.finish_track(sub.request_id)
            else:
                sub.scheduler.remove_track(sub.request_id)
            if done is not None:
                _quietly(sub.session.publish_done, sub.request_id, done[0], done[1])
        self._check_watched()

    def end_all(self, code: int, reason: str) -> None:
        """PUBLISH_DONE to every subscriber (the track ends here), after what is queued."""
        for sub in list(self.subscribers):
            self.end_subscription(sub, (code, reason))

    def hold(self, peer: Peer, request: SubscribeRequested) -> None:
        """``request`` waits for the upstream's SUBSCRIBE_OK."""
        self.waiting[(peer, request.request_id)] = request
        peer.waiting[request.request_id] = self

    def withdraw(self, peer: Peer, request_id: int) -> SubscribeRequested | None:
        """A waiting SUBSCRIBE is gone (unsubscribed, refused, its session ended)."""
        request = self.waiting.pop((peer, request_id), None)
        if peer.waiting.get(request_id) is self:
            del peer.waiting[request_id]
        if request is not None:
            self._check_watched()
        return request

    def take_waiting(self) -> list[tuple[Peer, SubscribeRequested]]:
        """Every waiting SUBSCRIBE, no longer waiting (to be accepted or refused now)."""
        taken = list(self.waiting.items())
        self.waiting.clear()
        for (peer, request_id), _ in taken:
            if peer.waiting.get(request_id) is self:
                del peer.waiting[request_id]
        return [(peer, request) for (peer, _), request in taken]

    def _check_watched(self) -> None:
        if not self.watched and self._on_unwatched is not None:
            self._on_unwatched(self)

    def serve_fetch(
        self,
        session: Session,
        request_id: int,
        start: Location,
        end: Location,
        *,
        descending: bool,
    ) -> None:
        """Answer a FETCH from the cache: FETCH_OK, one stream with every cached object, FIN."""
        objects = list(self.cache.objects(start, end, descending=descending))
        end_location = max((o.location for o in objects), default=start).next_object()
        session.accept_fetch(
            request_id,
            end_location=end_location,
            group_order=GroupOrder.DESCENDING if descending else GroupOrder.ASCENDING,
        )
        handle = session.open_fetch_stream(request_id)
        if session.version == DRAFT_16:
            # Draft-16 fetch objects carry no Object Status ("Object Status": "absent in
            # Objects delivered via a FETCH"): the end of a group or of the track is the
            # gap after its last object, so those markers are not serialized.
            objects = [o for o in objects if o.status == ObjectStatus.NORMAL]
        for obj in objects:
            session.write_fetch_object(
                handle,
                obj.group_id,
                obj.subgroup_id,
                obj.object_id,
                obj.payload,
                priority=obj.publisher_priority,
                extensions=obj.extensions,
                status=obj.status,
            )
        session.end_fetch_stream(handle)
        self.objects_out += len(objects)
        self.bytes_out += sum(len(o.payload) for o in objects)

    # --- upstream data -----------------------------------------------------------------

    def on_object(self, obj: CachedObject, now: float) -> bool:
        """Cache and forward one upstream object; False if it was a duplicate."""
        if not self.cache.add(obj, now):
            return False
        loc = obj.location  # one Location per object, not one per subscriber
        for sub in list(self.subscribers):
            if sub.end_group is not None and obj.group_id > sub.end_group:
                # An AbsoluteRange subscription passed its end group.
                self.end_subscription(
                    sub, (PublishDoneCode.SUBSCRIPTION_ENDED, "end group reached")
                )
                continue
            if sub.wants(loc):
                sub.peer.scheduler.push(sub.request_id, obj, now)
        return True

    def on_subgroup_end(self, group_id: int, subgroup_id: int, now: float) -> None:
        self.cache.subgroup_ended(group_id, subgroup_id)
        for sub in list(self.subscribers):
            sub.scheduler.end_subgroup(sub.request_id, group_id, subgroup_id, now)

    def on_subgroup_reset(self, group_id: int, subgroup_id: int) -> None:
        for sub in list(self.subscribers):
            sub.scheduler.reset_subgroup(sub.request_id, group_id, subgroup_id)

    def redeliver(self, obj: CachedObject, now: float) -> None:
        """Hand a cached object again to every subscription that wants it (its stream was
        reset and a repair brought it back)."""
        for sub in list(self.subscribers):
            self._deliver(sub, obj, now)

    def _deliver(self, sub: Subscription, obj: CachedObject, now: float) -> None:
        """Hand one object to the subscriber's scheduler (written, queued or dropped
        there, never reordered inside a stream)."""
        if sub.wants(obj.location):
            sub.scheduler.push(sub.request_id, obj, now)


def joining_range(ev: FetchRequested, largest: Location) -> tuple[Location, Location]:
    """Draft-16 "Joining Fetch Range Calculation" from the Largest Location in SUBSCRIBE_OK."""
    assert ev.joining_start is not None
    if ev.fetch_type is FetchType.ABSOLUTE_JOINING:
        start_group = ev.joining_start
    else:
        start_group = max(0, largest.group - ev.joining_start)
    return Location(start_group, 0), largest.next_object()


def filter_window(flt: SubscriptionFilter, largest: Location | None) -> tuple[Location, int | None]:
    """Start location and inclusive end group of a subscription, per the draft's filters."""
    if flt.type is FilterType.LARGEST_OBJECT:
        return (largest.next_object() if largest is not None else Location(0, 0)), None
    if flt.type is FilterType.NEXT_GROUP_START:
        return (largest.next_group() if largest is not None else Location(0, 0)), None
    assert flt.start is not None
    return flt.start, flt.end_group


def _quietly(fn: Callable[..., object], *args: object) -> None:
    """Call a Session method whose failure only concerns one peer (already logged there)."""
    try:
        fn(*args)
    except LocalError as exc:
        logger.debug("peer_call_failed", call=getattr(fn, "__name__", "?"), error=str(exc))
