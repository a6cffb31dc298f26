"""Namespace routing: who announced what, and telling SUBSCRIBE_NAMESPACE watchers.

Draft-16 watchers get NAMESPACE / NAMESPACE_DONE on their request stream (when
their Subscribe Options ask for namespaces); draft-14 watchers get
PUBLISH_NAMESPACE / PUBLISH_NAMESPACE_DONE from the relay. Watchers that want
tracks are offered every live track under their prefix with PUBLISH.
"""

from __future__ import annotations

from collections.abc import Iterable

from moqt.events import SubscribeNamespaceRequested
from moqt.types import Namespace
from moqt.version import DRAFT_14

from ._peer import Peer, call_peer, starts_with
from ._registry import TrackRegistry
from ._subscribing import publish_to
from ._track import Track

__all__ = [
    "announce_to_watchers",
    "announced_under",
    "offer_track",
    "publisher_for",
    "send_namespace",
    "wants_tracks",
    "watch_namespace",
    "withdraw_from_watchers",
]

# SUBSCRIBE_NAMESPACE Subscribe Options (draft-16): 0 PUBLISH, 1 NAMESPACE, 2 both.
_WANTS_NAMESPACES = (1, 2)
_WANTS_TRACKS = (0, 2)


def wants_tracks(peer: Peer, options: int) -> bool:
    return options in _WANTS_TRACKS or peer.session.version == DRAFT_14


def send_namespace(peer: Peer, request_id: int, options: int, namespace: Namespace) -> None:
    """Tell one watcher (its SUBSCRIBE_NAMESPACE ``request_id``) about ``namespace``."""
    if peer.session.version == DRAFT_14:
        if namespace not in peer.namespaces_sent:
            rid = call_peer(peer, peer.session.publish_namespace, namespace)
            if isinstance(rid, int):
                peer.namespaces_sent[namespace] = rid
    elif options in _WANTS_NAMESPACES:
        call_peer(peer, peer.session.announce_namespace, request_id, namespace)


def announce_to_watchers(peers: Iterable[Peer], source: Peer, namespace: Namespace) -> None:
    for other in peers:
        if other is source or other.closed:
            continue
        for srid, (prefix, options) in other.namespace_subscriptions.items():
            if starts_with(namespace, prefix):
                send_namespace(other, srid, options, namespace)


def withdraw_from_watchers(peers: list[Peer], source: Peer, namespace: Namespace) -> None:
    """``source`` stopped announcing ``namespace``; tell watchers unless another peer still does."""
    if any(
        ns == namespace
        for p in peers
        if not p.closed and p is not source
        for ns in p.announced.values()
    ):
        return
    for other in peers:
        if other is source or other.closed:
            continue
        for srid, (prefix, options) in other.namespace_subscriptions.items():
            if not starts_with(namespace, prefix):
                continue
            if other.session.version == DRAFT_14:
                rid = other.namespaces_sent.pop(namespace, None)
                if rid is not None:
                    call_peer(other, other.session.publish_namespace_done, rid)
            elif options in _WANTS_NAMESPACES:
                call_peer(other, other.session.withdraw_namespace, srid, namespace)


def announced_under(peers: Iterable[Peer], prefix: Namespace, *, exclude: Peer) -> list[Namespace]:
    found = {
        ns
        for other in peers
        if other is not exclude and not other.closed
        for ns in other.announced.values()
        if starts_with(ns, prefix)
    }
    return sorted(found)


def publisher_for(peers: Iterable[Peer], namespace: Namespace, *, exclude: Peer) -> Peer | None:
    """The peer whose announced (or routed) namespace is the longest prefix of ``namespace``."""
    best: tuple[int, Peer] | None = None
    for peer in peers:
        if peer is exclude or peer.closed:
            continue
        for ns in (*peer.announced.values(), *peer.routes):
            if starts_with(namespace, ns) and (best is None or len(ns) >= best[0]):
                best = (len(ns), peer)
    return best[1] if best is not None else None


def watch_namespace(
    peers: Iterable[Peer],
    tracks: TrackRegistry,
    peer: Peer,
    ev: SubscribeNamespaceRequested,
    now: float,
) -> None:
    """SUBSCRIBE_NAMESPACE: accept it, tell what is announced under the prefix and, if
    the watcher wants tracks, PUBLISH every live one there."""
    peer.namespace_subscriptions[ev.request_id] = (ev.prefix, ev.options)
    call_peer(peer, peer.session.accept_subscribe_namespace, ev.request_id)
    for namespace in announced_under(peers, ev.prefix, exclude=peer):
        send_namespace(peer, ev.request_id, ev.options, namespace)
    if wants_tracks(peer, ev.options):
        for track in tracks:
            if track.live and starts_with(track.namespace, ev.prefix):
                assert track.upstream is not None
                if track.upstream.peer is not peer:
                    publish_to(peer, track, now)


def offer_track(peers: Iterable[Peer], track: Track, now: float, *, exclude: Peer) -> None:
    """A track went live: PUBLISH it to namespace watchers that want tracks."""
    for other in peers:
        if other is exclude or other.closed:
            continue
        if any(
            starts_with(track.namespace, prefix) and wants_tracks(other, options)
            for prefix, options in other.namespace_subscriptions.values()
        ):
            publish_to(other, track, now)
