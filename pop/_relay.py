"""The relay core as a POP uses it: tokens upstream, linger, tracks that survive their upstream.

:class:`PopRelay` extends :class:`mesh.relay.Relay` (the relay core merges all
viewers of a track into one upstream subscription) with these edge behaviours:

* the upstream SUBSCRIBE carries a playback token that grants the namespace
  (the token of the viewer that caused it), so a parent POP or an origin that
  checks tokens can;
* an upstream subscription is kept ``linger`` seconds after its last viewer
  left (the core's ``RelayConfig.upstream_linger``), so a viewer that comes back
  (or zaps between renditions) does not pay a new upstream round trip;
* a new upstream subscription is paired with a joining FETCH of the current
  group, so the POP's cache holds the latest group from its start and late
  joiners (SUBSCRIBE + joining FETCH) get it from here, not from the origin;
  a viewer's joining FETCH that arrives while ours is still coming waits for it;
* the start group of that new upstream subscription is kept whole: when the
  upstream loses its live tail (see :mod:`pop._repair`), one standalone FETCH
  gets the rest of the group into the cache and to the viewers;
* when an upstream session goes away its tracks are *orphaned* instead of
  ended: viewers keep their subscriptions, and :meth:`resubscribe` attaches
  the track to a new upstream (back on the same node where it stopped, with
  ABSOLUTE_START, else from the next group on).  Only when no new upstream can
  be found does :meth:`end_orphan` send PUBLISH_DONE.

Upstream sessions are attached like any peer and routed the namespaces they
are used for with :meth:`route_namespace` (the core's ``add_route``), which is
how the core picks the upstream for a track.

It plugs into the core through :class:`mesh.relay.RelayHooks` (tokens upstream,
the joining FETCH of a new upstream, DOES_NOT_EXIST remembered, orphaning) and
the core's public methods (``subscribe_upstream``, ``cut_upstream``,
``end_track``, ``reject``), and watches events before the core does in
:meth:`handle_event`; it never overrides the core's handlers.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import structlog

from mesh.relay import Peer, Relay, RelayConfig, RelayHooks, Track
from moqt.errors import LocalError, PublishDoneCode, RequestErrorCode
from moqt.events import (
    Event,
    FetchRequested,
    FetchStreamEnded,
    FetchStreamReset,
    ObjectReceived,
    RequestRejected,
    SubgroupStreamEnded,
    SubgroupStreamReset,
    SubscribeAccepted,
    SubscribeRequested,
)
from moqt.session import Session
from moqt.types import Location, Namespace, SubscriptionFilter

from ._repair import StartGroup, StartGroups

__all__ = ["PopRelay"]

_log = structlog.get_logger("pop.relay")

# Downstream joining FETCHes wait at most this long for our upstream one to fill the cache.
_FILL_TIMEOUT = 2.0
# A track the upstream said does not exist is answered DOES_NOT_EXIST here this long.
_MISSING_FOR = 1.0
_MISSING_MAX = 10_000
# At most one "upstream_subscribe_failed" warning per peer this often (the rest counted).
_WARN_EVERY = 10.0


class PopRelay(Relay, RelayHooks):
    """See the module docstring; its :class:`RelayHooks` are its own methods."""

    def __init__(
        self,
        config: RelayConfig | None = None,
        *,
        linger: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if linger < 0:
            raise ValueError("linger must be >= 0")
        # The core keeps an unwatched upstream subscription this long (and restarts the
        # wait whenever the last viewer leaves again).
        super().__init__(
            dataclasses.replace(config or RelayConfig(), upstream_linger=linger),
            clock,
            hooks=self,
        )
        self._upstream_peers: set[Peer] = set()
        self._tokens: dict[Namespace, bytes] = {}
        self._orphans: set[Track] = set()
        self._fetches: dict[int, Peer] = {}  # our upstream joining FETCHes -> their peer
        self._filling: dict[Track, float] = {}  # track -> give up waiting for its fetch at
        self._held: dict[Track, list[tuple[Peer, FetchRequested]]] = {}
        # upstream SUBSCRIBEs paired with a joining FETCH, until accepted: (peer, request id)
        self._joining: set[tuple[Peer, int]] = set()
        self._start_groups = StartGroups()
        self._missing: dict[tuple[Namespace, bytes], float] = {}  # -> answered until
        self._warned: dict[str, tuple[float, int]] = {}  # peer -> (last warning, suppressed)
        self.orphaned_total = 0
        self.resubscribed_total = 0
        self.resumed_total = 0
        self._node_of: dict[Peer, str] = {}  # upstream peer -> the node it is a link to
        self._lost_from: dict[Track, str] = {}  # orphaned track -> node it was on
        # resuming upstream SUBSCRIBEs (ABSOLUTE_START), until answered: (peer, request id)
        # -> the largest Location the track held when it asked
        self._resuming: dict[tuple[Peer, int], Location] = {}
        # orphaned tracks whose viewers' open streams were kept for a resume
        self._uncut: set[Track] = set()

    @property
    def linger(self) -> float:
        return self.config.upstream_linger

    # --- upstream peers ----------------------------------------------------------------

    def attach_upstream(self, session: Session, name: str, node: str | None = None) -> Peer:
        """Attach our client session to an upstream node (origin or parent POP) whose
        node id is ``node`` (a track orphaned there resumes where it stopped when it goes
        back to the same node, see :meth:`resubscribe`)."""
        peer = self.attach(session, name)
        self._upstream_peers.add(peer)
        if node is not None:
            self._node_of[peer] = node
        return peer

    def is_upstream(self, peer: Peer) -> bool:
        return peer in self._upstream_peers

    def route_namespace(self, peer: Peer, namespace: Namespace, token: bytes | None) -> None:
        """Use upstream ``peer`` for ``namespace`` from now on (the token goes upstream)."""
        if token is not None:
            self.remember_token(namespace, token)
        for other in self._upstream_peers:
            if other is not peer:
                self.remove_route(namespace, other)
        self.add_route(namespace, peer)

    def remember_token(self, namespace: Namespace, token: bytes) -> None:
        """The newest token a viewer was admitted with for ``namespace`` (sent upstream)."""
        self._tokens[namespace] = token

    def tracks_on(self, peer: Peer) -> list[Track]:
        """Tracks whose live upstream subscription is on ``peer``."""
        return [
            t
            for rid, t in peer.upstream.items()
            if t.upstream is not None and t.upstream.request_id == rid
        ]

    # --- hooks of the core (mesh.relay.RelayHooks) -----------------------------------------

    def upstream_token(self, track: Track) -> bytes | None:
        return self._tokens.get(track.namespace)

    def upstream_opened(self, track: Track, publisher: Peer) -> None:
        """Pair the new upstream SUBSCRIBE with a joining FETCH of the current group."""
        self._orphans.discard(track)
        assert track.upstream is not None
        self._joining.add((publisher, track.upstream.request_id))
        try:
            fid = publisher.session.joining_fetch(
                track.upstream.request_id, 0, auth_token=self._tokens.get(track.namespace)
            )
        except LocalError as exc:
            _log.debug("joining_fetch_failed", peer=publisher.name, error=str(exc))
            return
        # Its objects land in the track (cache) like those of the subscription.
        publisher.upstream[fid] = track
        self._fetches[fid] = publisher
        self._filling[track] = self.now() + _FILL_TIMEOUT

    def upstream_failed(self, publisher: Peer, error: str) -> None:
        """One warning per peer per ``_WARN_EVERY`` s; the ones in between are counted."""
        now = self.now()
        last, suppressed = self._warned.get(publisher.name, (-_WARN_EVERY, 0))
        if now - last < _WARN_EVERY:
            self._warned[publisher.name] = (last, suppressed + 1)
            return
        self._warned[publisher.name] = (now, 0)
        _log.warning(
            "upstream_subscribe_failed", peer=publisher.name, error=error, suppressed=suppressed
        )

    def upstream_refused(self, track: Track, event: RequestRejected) -> None:
        """The upstream refused our SUBSCRIBE as DOES_NOT_EXIST: remember it a moment."""
        if event.error != RequestErrorCode.DOES_NOT_EXIST:
            return
        if len(self._missing) >= _MISSING_MAX:
            now = self.now()
            self._missing = {k: t for k, t in self._missing.items() if t > now}
        if len(self._missing) < _MISSING_MAX:
            self._missing[(track.namespace, track.name)] = self.now() + _MISSING_FOR

    def upstream_lost(self, track: Track) -> bool:
        """An upstream session went away: orphan the tracks somebody watches (or waits
        for) there; a lingering one just ends."""
        upstream = track.upstream
        if upstream is None or upstream.peer not in self._upstream_peers or not track.watched:
            return False
        node = self._node_of.get(upstream.peer)
        if node is not None:
            self._lost_from[track] = node
        self._note_orphan(track)
        return True

    def upstream_released(self, track: Track) -> None:
        self._start_groups.forget_track(track)

    def needs_upstream(self, namespace: Namespace, name: bytes) -> bool:
        """Whether a SUBSCRIBE to this track would be sent upstream now."""
        track = self.track(namespace, name)
        if track is not None and track.upstream is not None:
            return False
        return self._missing_until(namespace, name) is None

    def _missing_until(self, namespace: Namespace, name: bytes) -> float | None:
        until = self._missing.get((namespace, name))
        if until is not None and until <= self.now():
            del self._missing[(namespace, name)]
            return None
        return until

    def handle_event(self, peer: Peer, event: Event) -> None:
        if isinstance(event, SubscribeRequested) and peer not in self._upstream_peers:
            track = self.track(event.namespace, event.name)
            if (track is None or track.upstream is None) and self._missing_until(
                event.namespace, event.name
            ) is not None:
                # The upstream said so a moment ago: no new upstream request per retry.
                self.reject(
                    peer, event.request_id, RequestErrorCode.DOES_NOT_EXIST, "no such track"
                )
                return
        if peer in self._upstream_peers and (
            self._resume_event(peer, event) or self._start_group_event(peer, event)
        ):
            return
        if isinstance(event, FetchStreamEnded | FetchStreamReset | RequestRejected):
            if self._fetches.get(event.request_id) is peer:
                del self._fetches[event.request_id]
                track = peer.upstream.pop(event.request_id, None)
                if isinstance(event, RequestRejected):
                    _log.debug("joining_fetch_refused", peer=peer.name, reason=event.reason)
                else:
                    super().handle_event(peer, event)
                if track is not None:
                    self._release_fetches(track)
                return
        if isinstance(event, FetchRequested) and not self.is_upstream(peer):
            track = self.track(event.namespace, event.name)
            if track is not None and track in self._filling:
                # Our joining FETCH of the current group is still coming: answer this one
                # from the cache once it is there.
                self._held.setdefault(track, []).append((peer, event))
                return
        super().handle_event(peer, event)

    # --- the start group (pop._repair) ------------------------------------------------------

    def _start_group_event(self, peer: Peer, event: Event) -> bool:
        """Watch an upstream event for start-group loss; True when it was fully handled."""
        if isinstance(event, ObjectReceived):
            repair = self._start_groups.repair(peer, event.request_id)
            if repair is not None:
                self._repair_object(peer, event, repair)
                return True
            super().handle_event(peer, event)
            start = self._start_groups.on_live_object(
                peer, event.request_id, event.group_id, event.subgroup_id
            )
            if start is not None:
                self._repair(start)
            return True
        if isinstance(event, SubscribeAccepted):
            if (peer, event.request_id) in self._joining:
                self._joining.discard((peer, event.request_id))
                track = peer.upstream.get(event.request_id)
                if track is not None:
                    self._start_groups.watch(peer, event.request_id, track, event.largest)
            return False
        if isinstance(event, SubgroupStreamEnded):
            self._start_groups.on_live_end(
                peer, event.request_id, event.group_id, event.subgroup_id
            )
            return False
        if isinstance(event, SubgroupStreamReset):
            super().handle_event(peer, event)
            start = self._start_groups.on_live_reset(peer, event.request_id, event.group_id)
            if start is not None:
                self._repair(start)
            return True
        if isinstance(event, FetchStreamEnded | FetchStreamReset | RequestRejected):
            self._joining.discard((peer, event.request_id))
            repair = self._start_groups.repair_done(peer, event.request_id)
            if repair is None:
                return False
            peer.upstream.pop(event.request_id, None)
            if isinstance(event, FetchStreamEnded):
                # Every object the upstream still had of the group is here: end the
                # viewers' streams of it like the upstream's FIN would have.
                now = self.now()
                for subgroup in sorted(repair.subgroups):
                    repair.track.on_subgroup_end(repair.group, subgroup, now)
            # No object back: the group had ended at the Largest Location (nothing lost).
            log = _log.info if repair.objects else _log.debug
            log(
                "start_group_repaired",
                track=repair.track.label,
                group=repair.group,
                objects=repair.objects,
                subgroups=sorted(repair.subgroups),
                outcome=type(event).__name__,
            )
            return True
        return False

    def _repair(self, start: StartGroup) -> None:
        """FETCH the rest of ``start``'s group from its upstream (see :mod:`pop._repair`)."""
        track, peer = start.track, start.peer
        upstream = track.upstream
        if upstream is None or upstream.peer is not peer or peer.closed:
            return
        first, end = start.repair_range()
        try:
            fid = peer.session.fetch(
                track.namespace,
                track.name,
                first,
                end,
                auth_token=self._tokens.get(track.namespace),
            )
        except LocalError as exc:
            _log.debug("start_group_fetch_failed", peer=peer.name, error=str(exc))
            return
        peer.upstream[fid] = track  # its objects land in the track like live ones
        self._start_groups.repairing(peer, fid, start)
        _log.debug(
            "start_group_fetch",
            track=track.label,
            group=start.group,
            start=f"{first.group}/{first.object}",
            upstream=peer.name,
        )

    def _repair_object(self, peer: Peer, event: ObjectReceived, repair: StartGroup) -> None:
        track = repair.track
        repair.objects += 1
        if event.subgroup_id is not None:
            repair.subgroups.add(event.subgroup_id)
        cached = track.cache.group(event.group_id)
        known = cached.objects.get(event.object_id) if cached is not None else None
        super().handle_event(peer, event)  # cached, and forwarded if it is new
        if known is None:
            return
        # It came live before and the upstream then reset its stream (the viewers' too):
        # the viewers' subscriptions get it again.
        track.redeliver(known, self.now())

    def _release_fetches(self, track: Track) -> None:
        self._filling.pop(track, None)
        for peer, request in self._held.pop(track, []):
            super().handle_event(peer, request)

    def poll(self) -> None:
        now = self.now()
        for track, deadline in list(self._filling.items()):
            if deadline <= now:
                self._release_fetches(track)
        self._start_groups.prune()
        super().poll()

    def detach(self, peer: Peer) -> None:
        """The core ends or orphans (:meth:`upstream_lost`) what ``peer`` served."""
        if peer in self._upstream_peers:
            self._start_groups.forget_peer(peer)
            self._joining = {k for k in self._joining if k[0] is not peer}
            for fid in [f for f, p in self._fetches.items() if p is peer]:
                del self._fetches[fid]
                fetching = peer.upstream.get(fid)
                if fetching is not None:
                    self._release_fetches(fetching)
            self._resuming = {k: v for k, v in self._resuming.items() if k[0] is not peer}
        super().detach(peer)
        self._upstream_peers.discard(peer)
        self._node_of.pop(peer, None)

    # --- orphans -------------------------------------------------------------------------

    def cut_upstream(self, track: Track, *, unsubscribe: bool = False) -> None:
        """An orphaned track that holds objects keeps its viewers' open streams: a resume
        (:meth:`resubscribe`) continues them; they are cut only once it will not."""
        upstream = track.upstream
        if (
            upstream is None
            or track not in self._orphans
            or track not in self._lost_from
            or track.cache.largest is None
        ):
            super().cut_upstream(track, unsubscribe=unsubscribe)
            return
        track.upstream = None
        upstream.peer.upstream.pop(upstream.request_id, None)
        self._uncut.add(track)
        if unsubscribe:
            try:
                upstream.peer.session.unsubscribe(upstream.request_id)
            except LocalError as exc:
                _log.debug("unsubscribe_failed", peer=upstream.peer.name, error=str(exc))

    def _cut_streams(self, track: Track) -> None:
        """No resume after all: cut the viewers' streams kept open for it."""
        if track in self._uncut:
            self._uncut.discard(track)
            for sub in track.subscribers:
                sub.scheduler.cut_streams(sub.request_id)

    def _note_orphan(self, track: Track) -> None:
        """``track`` leaves its upstream but keeps its viewers (their open streams are
        cut unless it may resume, see :meth:`cut_upstream`): it waits for :meth:`resubscribe` or :meth:`end_orphan`."""
        self._start_groups.forget_track(track)
        self._orphans.add(track)
        self.orphaned_total += 1
        _log.info("track_orphaned", track=track.label, subscribers=len(track.subscribers))

    def orphan_tracks_of(self, peer: Peer, tracks: list[Track]) -> None:
        """Move ``tracks`` off upstream ``peer`` (e.g. the route changed); UNSUBSCRIBE there."""
        for track in tracks:
            upstream = track.upstream
            if upstream is None or upstream.peer is not peer:
                continue
            self._note_orphan(track)
            self.cut_upstream(track, unsubscribe=True)

    def orphans(self) -> list[Track]:
        """Tracks waiting for a new upstream (dropping those nobody watches any more)."""
        for track in [t for t in self._orphans if not t.watched]:
            self._orphans.discard(track)
            self._lost_from.pop(track, None)
            self._uncut.discard(track)
        return list(self._orphans)

    def resubscribe(self, track: Track, peer: Peer) -> bool:
        """Attach an orphaned track to upstream ``peer``.

        Back on the node it was orphaned from (a stall, a replaced link), it asks for
        what it has not got: ABSOLUTE_START at :func:`resume_point`, so the node replays
        from its cache what came meanwhile and the viewers see no hole (objects it holds
        already are dropped as duplicates by the cache). On another node (a different
        run of the track) or with nothing held, from the next group boundary on."""
        if track not in self._orphans:
            return False
        held = track.cache.largest
        same_node = self._lost_from.get(track) == self._node_of.get(peer, "")
        start = resume_point(track) if same_node else None
        if start is None:
            self._cut_streams(track)
        flt = (
            SubscriptionFilter.absolute_start(start)
            if start is not None
            else SubscriptionFilter.next_group_start()
        )
        if not self.subscribe_upstream(track, peer, flt):
            return False
        self._orphans.discard(track)
        self._lost_from.pop(track, None)
        self._uncut.discard(track)
        self.resubscribed_total += 1
        if start is not None and held is not None and track.upstream is not None:
            self._resuming[(peer, track.upstream.request_id)] = held
            self.resumed_total += 1
        _log.info(
            "track_resubscribed",
            track=track.label,
            upstream=peer.name,
            start=f"{start.group}/{start.object}" if start is not None else "next group",
        )
        return True

    def _resume_event(self, peer: Peer, event: Event) -> bool:
        """The answer to a resuming SUBSCRIBE; True when it was refused or is of another
        run of the track (the upstream is behind what we hold) and a plain NEXT_GROUP_START
        SUBSCRIBE went in its place (today's behaviour, never a retry loop)."""
        if not isinstance(event, SubscribeAccepted | RequestRejected):
            return False
        held = self._resuming.pop((peer, event.request_id), None)
        if held is None:
            return False
        track = peer.upstream.get(event.request_id)
        if track is None or track.upstream is None or track.upstream.request_id != event.request_id:
            return False
        if isinstance(event, SubscribeAccepted):
            if event.largest is not None and not event.largest < held:
                return False  # the core goes on (replayed objects land in the cache)
            try:
                peer.session.unsubscribe(event.request_id)
            except LocalError as exc:
                _log.debug("unsubscribe_failed", peer=peer.name, error=str(exc))
        _log.info(
            "track_resume_refused",
            track=track.label,
            upstream=peer.name,
            answer=type(event).__name__,
            reason=getattr(event, "reason", None),
        )
        peer.upstream.pop(event.request_id, None)
        track.upstream = None
        for sub in track.subscribers:
            sub.scheduler.cut_streams(sub.request_id)
        if not self.subscribe_upstream(track, peer, SubscriptionFilter.next_group_start()):
            self._note_orphan(track)  # the router tries again
        return True

    def end_orphan(self, track: Track, reason: str) -> None:
        """No upstream could be found: PUBLISH_DONE to its viewers."""
        if track not in self._orphans:
            return
        self._orphans.discard(track)
        self._lost_from.pop(track, None)
        self._uncut.discard(track)
        self.end_track(track, PublishDoneCode.TRACK_ENDED, reason, refusal=reason)

    def statistics(self) -> dict[str, int]:
        stats = super().statistics()
        stats.update(
            orphaned_tracks=len(self._orphans),
            orphaned_total=self.orphaned_total,
            resubscribed_total=self.resubscribed_total,
            resumed_total=self.resumed_total,
            lingering_tracks=sum(
                1
                for p in self._upstream_peers
                for t in self.tracks_on(p)
                if not t.subscribers
                and t.upstream is not None
                and t.upstream.release_at is not None
            ),
            upstream_sessions=len(self._upstream_peers),
            **self._start_groups.statistics(),
        )
        return stats


def resume_point(track: Track) -> Location | None:
    """The first Location ``track`` has not got: the object after the largest it holds
    when every object of that group up to it is here, else the start of that group (a
    hole in it); None when it holds nothing (nothing to resume)."""
    largest = track.cache.largest
    if largest is None:
        return None
    group = track.cache.group(largest.group)
    if group is not None and len(group.objects) == largest.object + 1:
        return largest.next_object()
    return Location(largest.group, 0)
