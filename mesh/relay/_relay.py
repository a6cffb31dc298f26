"""The relay core: a track registry, one upstream subscription per track, a cache.

Sans-I/O like ``moqt``: :meth:`Relay.attach` a :class:`moqt.session.Session`
(any transport) and feed every event of it to :meth:`Relay.handle_event`. The
relay answers requests by calling the sessions, which write through their
transports. Time comes from the ``clock`` callable (tests pass a fake one).

Publishers reach the relay with PUBLISH_NAMESPACE (the relay subscribes
upstream on demand, once per track however many subscribers) or PUBLISH (the
publisher pushes the track). Subscribers use SUBSCRIBE (all four filters;
absolute filters replay from the cache), FETCH (standalone and joining, both
answered from the cache), SUBSCRIBE_NAMESPACE and TRACK_STATUS. Unknown tracks
get DOES_NOT_EXIST.

A :class:`Track` owns its subscriptions and the SUBSCRIBEs waiting for it (a
:class:`Peer` only indexes them); a subscription ends only by
``Subscription.end``, and a track nobody watches any more releases its upstream
(docs/ARCHITECTURE.md, "The relay core"). Roles plug in through ``RelayHooks``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from moqt.errors import LocalError, PublishDoneCode, RequestErrorCode
from moqt.events import (
    Event,
    FetchRequested,
    GoawayReceived,
    ObjectReceived,
    PublishAccepted,
    PublishDoneReceived,
    PublishNamespaceDone,
    PublishNamespaceRequested,
    PublishRequested,
    RequestRejected,
    SessionClosed,
    SetupCompleted,
    SubgroupStreamEnded,
    SubgroupStreamReset,
    SubscribeAccepted,
    SubscribeNamespaceEnded,
    SubscribeNamespaceRequested,
    SubscribeRequested,
    SubscriptionUpdated,
    TrackStatusRequested,
    Unsubscribed,
)
from moqt.session import Session
from moqt.types import Namespace, SubscriptionFilter, TrackName

from ._cache import CachedObject, CacheLimits
from ._fetching import answer_fetch, answer_track_status
from ._hooks import RelayHooks
from ._namespaces import (
    announce_to_watchers,
    offer_track,
    publisher_for,
    watch_namespace,
    withdraw_from_watchers,
)
from ._peer import SCHEDULER_TOTALS, Peer, call_peer, label, scheduler_totals
from ._registry import TrackRegistry
from ._scheduler import SubscriberScheduler, no_backlog
from ._scheduling import SchedulerLimits, relay_link_limits
from ._subscribing import (
    accept_subscription,
    update_from_publish_ok,
    update_subscription,
)
from ._track import Track, Upstream, UpstreamKind

__all__ = ["Peer", "Relay", "RelayConfig"]

logger = structlog.get_logger("mesh.relay")


@dataclass(frozen=True, slots=True)
class RelayConfig:
    cache: CacheLimits = field(default_factory=CacheLimits)
    # Objects larger than this are refused by each session (PROTOCOL_VIOLATION).
    max_object_size: int = 8 << 20
    max_tracks: int = 10_000
    # After PUBLISH_DONE, wait this long for the publisher's last streams to finish.
    done_linger: float = 2.0
    # Keep an upstream SUBSCRIBE this long after its last subscriber left (0: drop at once).
    upstream_linger: float = 0.0
    # Per-subscriber scheduling: drop by priority instead of stalling.
    scheduler: SchedulerLimits = field(default_factory=SchedulerLimits)
    # Scheduling toward peers marked as relay links (see Relay.mark_relay_link).
    relay_link_scheduler: SchedulerLimits = field(default_factory=relay_link_limits)


class Relay:
    def __init__(
        self,
        config: RelayConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        hooks: RelayHooks | None = None,
    ) -> None:
        self.config = config or RelayConfig()
        self._clock = clock
        self._hooks = hooks or RelayHooks()
        self._tracks = TrackRegistry(
            self.config.cache, self.config.max_tracks, on_unwatched=self._release_if_unwatched
        )
        self._peers: list[Peer] = []
        self._counters: dict[str, int] = {
            "sessions_total": 0,
            "objects_in": 0,
            "bytes_in": 0,
            "duplicate_objects": 0,
            "requests_rejected": 0,
            "fetches": 0,
            "upstream_subscribes": 0,
            "subscribers_too_far_behind": 0,
        }
        # totals of schedulers of sessions that are gone (counters never go down)
        self._retired_scheduling = dict.fromkeys(SCHEDULER_TOTALS, 0)
        self._rejections: dict[str, int] = {}

    # --- sessions ----------------------------------------------------------------------

    def attach(
        self, session: Session, name: str, *, send_backlog: Callable[[], int] | None = None
    ) -> Peer:
        """Attach a session. ``send_backlog`` reports the bytes its connection holds unsent
        (``MoqtConnection.send_backlog``); without it the peer is never seen congested.
        Call :meth:`pump` when that connection may take more (packets arrived)."""
        scheduler = SubscriberScheduler(
            session,
            send_backlog or no_backlog,
            self.config.scheduler,
            on_too_far_behind=lambda request_id: self._too_far_behind(peer, request_id),
            name=name,
        )
        peer = Peer(session, name, scheduler)
        self._peers.append(peer)
        self._counters["sessions_total"] += 1
        return peer

    @property
    def wake_backlog(self) -> int:
        """The least send backlog at which a peer's scheduler holds objects back: below
        it everything is written straight through, so nobody needs a writable wake-up."""
        return min(
            self.config.scheduler.backlog_threshold,
            self.config.relay_link_scheduler.backlog_threshold,
        )

    def mark_relay_link(self, peer: Peer) -> None:
        """``peer`` is another relay (a POP of this origin, a child POP): schedule toward it
        with ``config.relay_link_scheduler``, which leaves drop decisions to the edge."""
        peer.relay_link = True
        peer.scheduler.limits = self.config.relay_link_scheduler

    def pump(self, peer: Peer) -> None:
        """The peer's connection may have room: write what its scheduler holds."""
        if not peer.closed and not peer.scheduler.idle:
            peer.scheduler.pump(self._clock())

    def now(self) -> float:
        """The relay's clock."""
        return self._clock()

    def _too_far_behind(self, peer: Peer, request_id: int) -> None:
        """The scheduler dropped a subscription's state and sent PUBLISH_DONE
        TOO_FAR_BEHIND: end it everywhere else."""
        self._counters["subscribers_too_far_behind"] += 1
        sub = peer.downstream.get(request_id)
        if sub is not None:
            sub.end()

    def add_route(self, prefix: Namespace, peer: Peer) -> None:
        """Send SUBSCRIBEs for tracks under ``prefix`` to ``peer`` as if it had announced
        it: how a POP uses a session it opened to its parent relay or origin."""
        peer.routes.add(prefix)

    def remove_route(self, prefix: Namespace, peer: Peer) -> None:
        peer.routes.discard(prefix)

    def handle_event(self, peer: Peer, event: Event) -> None:
        """React to one event of ``peer``'s session."""
        if peer.closed:
            return
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, peer, event)

    # --- publishers --------------------------------------------------------------------

    def _on_publish_namespace(self, peer: Peer, ev: PublishNamespaceRequested) -> None:
        peer.announced[ev.request_id] = ev.namespace
        call_peer(peer, peer.session.accept_publish_namespace, ev.request_id)
        logger.info("namespace_announced", session=peer.name, namespace=label(ev.namespace))
        announce_to_watchers(self._peers, peer, ev.namespace)

    def _on_publish_namespace_done(self, peer: Peer, ev: PublishNamespaceDone) -> None:
        namespace = peer.announced.pop(ev.request_id, None)
        if namespace is not None:
            withdraw_from_watchers(self._peers, peer, namespace)

    def _on_publish(self, peer: Peer, ev: PublishRequested) -> None:
        track = self._tracks.get_or_create(ev.namespace, ev.name)
        if track is None:
            self.reject(peer, ev.request_id, RequestErrorCode.INTERNAL_ERROR, "too many tracks")
            return
        if track.upstream is not None and not track.upstream.peer.closed:
            self.end_track(track, PublishDoneCode.GOING_AWAY, "replaced by a new publisher")
        track.restart_if_behind(ev.largest)
        track.upstream = Upstream(
            peer,
            ev.request_id,
            UpstreamKind.PUBLISH,
            live=True,
            largest=ev.largest,
            group_order=ev.group_order,
            extensions=ev.extensions,
        )
        peer.upstream[ev.request_id] = track
        call_peer(
            peer,
            peer.session.accept_publish,
            ev.request_id,
            forward=True,
            group_order=ev.group_order,
        )
        logger.info("track_published", session=peer.name, track=track.label)
        offer_track(self._peers, track, self._clock(), exclude=peer)

    def _on_object(self, peer: Peer, ev: ObjectReceived) -> None:
        track = peer.upstream.get(ev.request_id)
        if track is None:
            return
        self._counters["objects_in"] += 1
        self._counters["bytes_in"] += len(ev.payload)
        obj = CachedObject(
            ev.group_id,
            ev.subgroup_id,
            ev.object_id,
            ev.publisher_priority,
            ev.status,
            ev.payload,
            ev.extensions,
        )
        if not track.on_object(obj, self._clock()):
            self._counters["duplicate_objects"] += 1

    def _on_subgroup_ended(self, peer: Peer, ev: SubgroupStreamEnded) -> None:
        track = peer.upstream.get(ev.request_id)
        if track is not None:
            track.on_subgroup_end(ev.group_id, ev.subgroup_id, self._clock())
            self._stream_finished(track)

    def _on_subgroup_reset(self, peer: Peer, ev: SubgroupStreamReset) -> None:
        track = peer.upstream.get(ev.request_id)
        if track is not None:
            track.on_subgroup_reset(ev.group_id, ev.subgroup_id)
            self._stream_finished(track)

    def _stream_finished(self, track: Track) -> None:
        upstream = track.upstream
        if upstream is None:
            return
        upstream.streams_finished += 1
        if upstream.done is not None and upstream.streams_finished >= upstream.done[2]:
            self.end_track(track, upstream.done[0], upstream.done[1])

    def _on_publish_done(self, peer: Peer, ev: PublishDoneReceived) -> None:
        track = peer.upstream.get(ev.request_id)
        upstream = track.upstream if track is not None else None
        if track is None or upstream is None or upstream.peer is not peer:
            return
        reason = ev.reason or "track ended"
        if upstream.streams_finished >= ev.stream_count:
            self.end_track(track, ev.code, reason)
            return
        # Objects may still be in flight on streams that have not finished yet.
        upstream.done = (ev.code, reason, ev.stream_count, self._clock() + self.config.done_linger)

    def poll(self) -> None:
        """Periodic housekeeping: end tracks whose publisher said PUBLISH_DONE long enough
        ago, drop upstream subscriptions whose linger ran out, age the caches."""
        now = self._clock()
        for track in self._tracks:
            upstream = track.upstream
            if upstream is not None and upstream.done is not None and upstream.done[3] <= now:
                self.end_track(track, upstream.done[0], upstream.done[1])
            elif (
                upstream is not None
                and upstream.release_at is not None
                and upstream.release_at <= now
                and not track.watched
            ):
                self._release(track)
            track.cache.evict(now)
        for peer in list(self._peers):
            if not peer.scheduler.idle:
                peer.scheduler.pump(now)

    def end_track(
        self, track: Track, code: int, reason: str, *, refusal: str = "track ended"
    ) -> None:
        """The track ends here: its upstream (if any) is forgotten, every subscription gets
        PUBLISH_DONE ``code``/``reason`` after what is queued, and the SUBSCRIBEs waiting
        for it are refused DOES_NOT_EXIST ``refusal``."""
        upstream = track.upstream
        if upstream is not None:
            track.upstream = None
            upstream.peer.upstream.pop(upstream.request_id, None)
        track.end_all(code, reason)
        for other, request in track.take_waiting():
            self._reject_waiting(
                other, request.request_id, RequestErrorCode.DOES_NOT_EXIST, refusal
            )
        logger.info("track_ended", track=track.label, code=code, reason=reason)

    # --- subscribers -------------------------------------------------------------------

    def _on_subscribe(self, peer: Peer, ev: SubscribeRequested) -> None:
        track = self._tracks.get(ev.namespace, ev.name)
        if track is None or track.upstream is None:
            publisher = publisher_for(self._peers, ev.namespace, exclude=peer)
            if publisher is None:
                self.reject(peer, ev.request_id, RequestErrorCode.DOES_NOT_EXIST, "no such track")
                return
            track = track or self._tracks.get_or_create(ev.namespace, ev.name)
            if track is None:
                self.reject(peer, ev.request_id, RequestErrorCode.INTERNAL_ERROR, "too many tracks")
                return
            if not self.subscribe_upstream(track, publisher):
                self.reject(peer, ev.request_id, RequestErrorCode.INTERNAL_ERROR, "upstream failed")
                return
            self._hooks.upstream_opened(track, publisher)
        if not track.live:
            track.hold(peer, ev)
            return
        self._accept_subscriber(peer, track, ev)

    def _accept_subscriber(self, peer: Peer, track: Track, ev: SubscribeRequested) -> None:
        sub = accept_subscription(peer, track, ev, self._clock())
        if sub is None:
            return
        logger.info(
            "subscribed",
            session=peer.name,
            track=track.label,
            filter=ev.filter.type.name,
            start=f"{sub.start.group}/{sub.start.object}",
        )
        for fetch in peer.deferred_fetches.pop(ev.request_id, []):
            self._on_fetch(peer, fetch)

    def subscribe_upstream(
        self, track: Track, publisher: Peer, flt: SubscriptionFilter | None = None
    ) -> bool:
        """SUBSCRIBE to ``track`` on ``publisher`` (default filter: the largest object) and
        make it the track's upstream; False when the session could not send it."""
        try:
            rid = publisher.session.subscribe(
                track.namespace,
                track.name,
                filter=flt or SubscriptionFilter.largest_object(),
                auth_token=self._hooks.upstream_token(track),
            )
        except LocalError as exc:
            self._hooks.upstream_failed(publisher, str(exc))
            return False
        track.upstream = Upstream(publisher, rid, UpstreamKind.SUBSCRIBE)
        publisher.upstream[rid] = track
        self._counters["upstream_subscribes"] += 1
        return True

    def _on_subscribe_accepted(self, peer: Peer, ev: SubscribeAccepted) -> None:
        track = peer.upstream.get(ev.request_id)
        if track is None or track.upstream is None:
            return
        track.restart_if_behind(ev.largest)
        track.upstream.live = True
        track.upstream.largest = ev.largest
        track.upstream.group_order = ev.group_order
        track.upstream.extensions = ev.extensions
        for other, request in track.take_waiting():
            self._accept_subscriber(other, track, request)
        offer_track(self._peers, track, self._clock(), exclude=peer)

    def _on_request_rejected(self, peer: Peer, ev: RequestRejected) -> None:
        track = peer.upstream.pop(ev.request_id, None)
        if (
            track is not None
            and track.upstream is not None
            and track.upstream.request_id == ev.request_id
        ):
            self._hooks.upstream_refused(track, ev)
            track.upstream = None
            code = ev.error if ev.error is not None else ev.code
            for other, request in track.take_waiting():
                self._reject_waiting(other, request.request_id, code, ev.reason)
            return
        sub = peer.downstream.get(ev.request_id)
        if sub is not None:  # our PUBLISH to a namespace subscriber was refused
            sub.end()

    def _on_unsubscribe(self, peer: Peer, ev: Unsubscribed) -> None:
        sub = peer.downstream.get(ev.request_id)
        if sub is not None:
            sub.end()
            return
        peer.deferred_fetches.pop(ev.request_id, None)
        waited = peer.waiting.get(ev.request_id)
        if waited is not None:
            waited.withdraw(peer, ev.request_id)

    def _release_if_unwatched(self, track: Track) -> None:
        """The track's last subscription ended or its last waiting SUBSCRIBE went: drop
        our upstream SUBSCRIBE (after ``upstream_linger``; a PUBLISH keeps flowing)."""
        upstream = track.upstream
        if track.watched or upstream is None or upstream.kind is not UpstreamKind.SUBSCRIBE:
            return
        if self.config.upstream_linger > 0 and not upstream.peer.closed:
            upstream.release_at = self._clock() + self.config.upstream_linger
            return
        self._release(track)

    def _release(self, track: Track) -> None:
        upstream = track.upstream
        assert upstream is not None
        track.upstream = None
        upstream.peer.upstream.pop(upstream.request_id, None)
        call_peer(upstream.peer, upstream.peer.session.unsubscribe, upstream.request_id)
        logger.info("upstream_released", track=track.label)
        self._hooks.upstream_released(track)

    def cut_upstream(self, track: Track, *, unsubscribe: bool = False) -> None:
        """Take ``track`` off its upstream but keep its subscriptions: their open streams
        are cut (the old upstream will never end them), the next group starts clean once
        :meth:`subscribe_upstream` gives the track a new upstream. ``unsubscribe``: tell
        the old upstream (its session is still up)."""
        upstream = track.upstream
        if upstream is None:
            return
        track.upstream = None
        upstream.peer.upstream.pop(upstream.request_id, None)
        for sub in track.subscribers:
            sub.scheduler.cut_streams(sub.request_id)
        if unsubscribe:
            call_peer(upstream.peer, upstream.peer.session.unsubscribe, upstream.request_id)

    def _on_subscription_updated(self, peer: Peer, ev: SubscriptionUpdated) -> None:
        sub = peer.downstream.get(ev.request_id)
        if sub is not None:
            update_subscription(sub, ev)

    def _on_publish_accepted(self, peer: Peer, ev: PublishAccepted) -> None:
        sub = peer.downstream.get(ev.request_id)
        if sub is not None:
            update_from_publish_ok(sub, ev)

    # --- fetch / status ----------------------------------------------------------------

    def _on_fetch(self, peer: Peer, ev: FetchRequested) -> None:
        self._counters["fetches"] += 1
        answer_fetch(self._tracks, peer, ev, self.reject)

    def _on_track_status(self, peer: Peer, ev: TrackStatusRequested) -> None:
        answer_track_status(self._tracks, peer, ev, self.reject)

    # --- namespaces --------------------------------------------------------------------

    def _on_subscribe_namespace(self, peer: Peer, ev: SubscribeNamespaceRequested) -> None:
        watch_namespace(self._peers, self._tracks, peer, ev, self._clock())

    def _on_subscribe_namespace_ended(self, peer: Peer, ev: SubscribeNamespaceEnded) -> None:
        peer.namespace_subscriptions.pop(ev.request_id, None)

    # --- teardown ----------------------------------------------------------------------

    def _on_closed(self, peer: Peer, ev: SessionClosed) -> None:
        self.detach(peer)

    def detach(self, peer: Peer) -> None:
        """Forget a session: end what it published, drop what it subscribed."""
        if peer.closed:
            return
        peer.closed = True
        for track in list(peer.upstream.values()):
            upstream = track.upstream
            if upstream is None or upstream.peer is not peer:
                continue
            if upstream.done is None and self._hooks.upstream_lost(track):
                self.cut_upstream(track)
                continue
            code, reason = (
                (upstream.done[0], upstream.done[1])
                if upstream.done is not None
                else (PublishDoneCode.TRACK_ENDED, "publisher went away")
            )
            self.end_track(track, code, reason)
        peer.upstream.clear()
        for namespace in list(peer.announced.values()):
            withdraw_from_watchers(self._peers, peer, namespace)
        peer.announced.clear()
        for sub in list(peer.downstream.values()):
            sub.end()
        for request_id, waited in list(peer.waiting.items()):
            waited.withdraw(peer, request_id)
        peer.deferred_fetches.clear()
        peer.namespace_subscriptions.clear()
        if peer in self._peers:
            self._peers.remove(peer)
            for key, value in scheduler_totals(peer).items():
                self._retired_scheduling[key] += value
        peer.scheduler.detach()
        self._tracks.drop_unused()

    # --- helpers -----------------------------------------------------------------------

    def _reject_waiting(self, peer: Peer, request_id: int, code: int, reason: str) -> None:
        """Refuse a SUBSCRIBE that waited for the upstream (no longer held by its track),
        and the joining FETCHes behind it."""
        self.reject(peer, request_id, code, reason)
        for fetch in peer.deferred_fetches.pop(request_id, []):
            self.reject(peer, fetch.request_id, code, reason)

    def reject(self, peer: Peer, request_id: int, code: int, reason: str) -> None:
        """REQUEST_ERROR to ``peer``'s request, counted by error code."""
        self._counters["requests_rejected"] += 1
        try:
            name = RequestErrorCode(code).name.lower()
        except ValueError:
            name = str(code)
        self._rejections[name] = self._rejections.get(name, 0) + 1
        call_peer(peer, peer.session.reject_request, request_id, code, reason)

    # --- introspection -----------------------------------------------------------------

    def track(self, namespace: Namespace, name: TrackName) -> Track | None:
        return self._tracks.get(namespace, name)

    @property
    def peers(self) -> list[Peer]:
        return list(self._peers)

    def statistics(self) -> dict[str, int]:
        stats = dict(self._counters)
        stats.update(self._tracks.statistics(), sessions=len(self._peers))
        scheduling = dict(self._retired_scheduling)
        for peer in self._peers:
            for key, value in scheduler_totals(peer).items():
                scheduling[key] += value
        # objects_out/bytes_out of the registry count fetches; live objects are the schedulers'
        stats["objects_out"] += scheduling.pop("objects_sent")
        stats["bytes_out"] += scheduling.pop("bytes_sent")
        stats.update(scheduling)
        stats["queued_objects"] = sum(p.scheduler.queued_objects for p in self._peers)
        stats["queued_bytes"] = sum(p.scheduler.queued_bytes for p in self._peers)
        return stats

    def rejections(self) -> dict[str, int]:
        return dict(self._rejections)


def _on_goaway(relay: Relay, peer: Peer, event: Event) -> None:
    assert isinstance(event, GoawayReceived)
    logger.info("goaway_received", session=peer.name)


def _on_setup(relay: Relay, peer: Peer, event: Event) -> None:
    assert isinstance(event, SetupCompleted)
    logger.info("session_ready", session=peer.name, version=hex(event.version), path=event.path)


_HANDLERS: dict[type[Event], Callable[[Relay, Peer, Event], None]] = {
    SetupCompleted: _on_setup,
    GoawayReceived: _on_goaway,
    PublishNamespaceRequested: Relay._on_publish_namespace,  # type: ignore[dict-item]
    PublishNamespaceDone: Relay._on_publish_namespace_done,  # type: ignore[dict-item]
    PublishRequested: Relay._on_publish,  # type: ignore[dict-item]
    ObjectReceived: Relay._on_object,  # type: ignore[dict-item]
    SubgroupStreamEnded: Relay._on_subgroup_ended,  # type: ignore[dict-item]
    SubgroupStreamReset: Relay._on_subgroup_reset,  # type: ignore[dict-item]
    PublishDoneReceived: Relay._on_publish_done,  # type: ignore[dict-item]
    SubscribeRequested: Relay._on_subscribe,  # type: ignore[dict-item]
    SubscribeAccepted: Relay._on_subscribe_accepted,  # type: ignore[dict-item]
    RequestRejected: Relay._on_request_rejected,  # type: ignore[dict-item]
    Unsubscribed: Relay._on_unsubscribe,  # type: ignore[dict-item]
    SubscriptionUpdated: Relay._on_subscription_updated,  # type: ignore[dict-item]
    PublishAccepted: Relay._on_publish_accepted,  # type: ignore[dict-item]
    FetchRequested: Relay._on_fetch,  # type: ignore[dict-item]
    TrackStatusRequested: Relay._on_track_status,  # type: ignore[dict-item]
    SubscribeNamespaceRequested: Relay._on_subscribe_namespace,  # type: ignore[dict-item]
    SubscribeNamespaceEnded: Relay._on_subscribe_namespace_ended,  # type: ignore[dict-item]
    SessionClosed: Relay._on_closed,  # type: ignore[dict-item]
}
