"""Upstream selection and re-routing for a POP.

:class:`Router` answers "which upstream link serves this namespace?" from the
:class:`mesh.topology.Topology` snapshot (own-region origin first, a parent POP
of another region when configured, never a loop) and keeps the answer true:

* topology events: a node down closes its links; a route that moved makes the
  tracks on the old upstream move;
* upstream events from :class:`~pop._upstream.UpstreamPool`: a lost or silent
  link orphans its tracks (the relay keeps the viewers), a GOAWAY moves what can
  go elsewhere; an upstream that just failed or is draining is *suspect* and
  avoided for a few seconds while the registry may still list it;
* :meth:`Router.run` re-subscribes orphaned tracks at their new upstream (where
  they stopped on the same node, else from the next group), and ends them with PUBLISH_DONE after ``reroute_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace

import structlog

from mesh._topology_types import NoRoute, TopologyError, TopologyEvent, Upstream
from mesh.relay import Track
from mesh.topology import Topology
from moqt.aio import ConnectionClosed
from moqt.errors import LocalError, RequestErrorCode
from moqt.events import Event
from moqt.types import Namespace

from ._admission import namespace_text
from ._relay import PopRelay
from ._upstream import UpstreamLink, UpstreamPool, UpstreamUnavailable

__all__ = ["Router"]

_log = structlog.get_logger("pop.routing")

_RETRY_INTERVAL = 0.2
_SUSPECT_FOR = 5.0
_STATUS_TIMEOUT = 5.0


class Router:
    """See the module docstring; :meth:`bind` it to the pool and topology before use."""

    def __init__(self, relay: PopRelay, *, node_id: str, reroute_timeout: float = 15.0) -> None:
        self.relay = relay
        self._reroute_timeout = reroute_timeout
        self._log = _log.bind(node=node_id)
        self._pool: UpstreamPool | None = None
        self._topology: Topology | None = None
        self._wake = asyncio.Event()
        self._orphaned_at: dict[Track, float] = {}
        self._suspects: dict[str, float] = {}  # node id -> until (monotonic)
        self.reroutes = 0

    def bind(self, pool: UpstreamPool, topology: Topology) -> None:
        self._pool = pool
        self._topology = topology
        topology.add_listener(self.on_topology)

    @property
    def pool(self) -> UpstreamPool:
        assert self._pool is not None, "Router.bind() first"
        return self._pool

    @property
    def topology(self) -> Topology:
        assert self._topology is not None, "Router.bind() first"
        return self._topology

    async def ensure_route(
        self, namespace: Namespace, name: bytes, hops: tuple[str, ...], token: str
    ) -> tuple[int, str] | None:
        """Make sure an upstream link announces ``namespace``; an error to reject with, or None."""
        track = self.relay.track(namespace, name)
        if track is not None and track.upstream is not None:
            via = self.pool.link_for_peer(track.upstream.peer)
            if via is not None and via.key.node_id in hops:
                # Our upstream for it is the node asking: serving it would close a loop.
                return RequestErrorCode.DOES_NOT_EXIST, "route loop"
            return None  # the relay core merges this viewer into the live upstream
        current = self._routed_link(namespace)
        if current is not None and current.peer is not None and current.key.node_id not in hops:
            self.relay.route_namespace(current.peer, namespace, token.encode())
            return None
        try:
            upstream = self.resolve(namespace, hops)
        except TopologyError as exc:
            self._log.info("no_route", track=namespace_text(namespace), error=str(exc))
            return RequestErrorCode.DOES_NOT_EXIST, "no route to the broadcast"
        try:
            link = await self.pool.get(upstream)
        except UpstreamUnavailable as exc:
            self._log.warning("upstream_unavailable", upstream=upstream.node_id, error=str(exc))
            return RequestErrorCode.INTERNAL_ERROR, "upstream unavailable"
        assert link.peer is not None
        self.relay.route_namespace(link.peer, namespace, token.encode())
        return None

    async def track_status(
        self, namespace: Namespace, name: bytes, hops: tuple[str, ...], token: str
    ) -> Event | tuple[int, str] | None:
        """TRACK_STATUS for a track this POP does not relay yet: ask its upstream.

        None means the relay core can answer (the track is here); otherwise the
        upstream's answer (TrackStatusReceived or RequestRejected) or an error to
        reject with.
        """
        track = self.relay.track(namespace, name)
        if track is not None and (track.upstream is not None or track.cache.largest is not None):
            return None
        error = await self.ensure_route(namespace, name, hops, token)
        if error is not None:
            return error
        link = self._routed_link(namespace)
        if link is None or link.connection is None:
            return RequestErrorCode.INTERNAL_ERROR, "upstream unavailable"
        conn = link.connection
        try:
            rid = conn.session.track_status(namespace, name, auth_token=token.encode())
            return await asyncio.wait_for(conn.wait_response(rid), _STATUS_TIMEOUT)
        except (LocalError, ConnectionClosed, TimeoutError) as exc:
            self._log.info("track_status_failed", track=namespace_text(namespace), error=str(exc))
            return RequestErrorCode.INTERNAL_ERROR, "upstream did not answer"

    async def room_for(self, namespace: Namespace, name: bytes, within: float = 5.0) -> None:
        """Wait (up to ``within`` s) until the upstream link of ``namespace`` may send a
        SUBSCRIBE and its joining FETCH: many new tracks at once (say, a client asking
        for tracks that do not exist) would otherwise run out of the upstream's
        MAX_REQUEST_ID and be answered INTERNAL_ERROR instead of the upstream's answer."""
        if not self.relay.needs_upstream(namespace, name):
            return
        link = self._routed_link(namespace)
        if link is None or link.connection is None:
            return
        session = link.connection.session
        deadline = time.monotonic() + within
        while session.requests_available < 2 and not link.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            link.progress.clear()
            # Answers free ids; MAX_REQUEST_ID itself comes with no event: look again soon.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(link.progress.wait(), min(left, 0.05))

    def _routed_link(self, namespace: Namespace) -> UpstreamLink | None:
        for link in self.pool.links():
            if link.peer is not None and not link.peer.closed:
                if namespace in link.peer.routes:
                    return link
        return None

    def on_link_lost(self, link: UpstreamLink) -> None:
        if link.failed:
            # Do not pick it again right away while the registry still lists it.
            self._suspects[link.key.node_id] = time.monotonic() + _SUSPECT_FOR
        self._wake.set()

    def resolve(self, namespace: Namespace, hops: tuple[str, ...] = ()) -> Upstream:
        """Topology resolution that avoids upstreams which just failed, if it can."""
        name = namespace_text(namespace)
        now = time.monotonic()
        for node_id, until in list(self._suspects.items()):
            if until <= now:
                del self._suspects[node_id]
        avoid = tuple(n for n in self._suspects if n not in hops)
        if avoid:
            try:
                found = self.topology.resolve(name, (*hops, *avoid))
            except NoRoute:
                pass
            else:
                path = tuple(n for n in found.path if n not in avoid)
                return replace(found, path=path)
        return self.topology.resolve(name, hops)

    def on_topology(self, event: TopologyEvent) -> None:
        if event.event == "node_down":
            if self.pool.close_node(event.node_id, "node down"):
                self._wake.set()
        elif event.event in ("route_set", "route_gone") and event.namespace:
            self.check_routes(event.namespace)

    def check_routes(
        self, namespace_name: str | None = None, only: UpstreamLink | None = None
    ) -> None:
        """Move tracks whose namespace now resolves to another upstream (route change, GOAWAY).

        ``namespace_name`` limits the check to one namespace, ``only`` to one link.
        """
        for link in [only] if only is not None else self.pool.links():
            peer = link.peer
            if peer is None or peer.closed:
                continue
            moved: list[Track] = []
            for track in self.relay.tracks_on(peer):
                if namespace_name is not None and namespace_text(track.namespace) != namespace_name:
                    continue
                try:
                    target = self.resolve(track.namespace, link.request_path)
                except TopologyError:
                    continue  # keep what works until something better is known
                if target.node_id != link.key.node_id:
                    moved.append(track)
            if moved:
                self._log.info(
                    "route_moved",
                    old=link.key.node_id,
                    tracks=[t.label for t in moved],
                )
                self.relay.orphan_tracks_of(peer, moved)
                for ns in {t.namespace for t in moved}:
                    self.relay.remove_route(ns, peer)
                self._wake.set()

    def on_upstream_goaway(self, link: UpstreamLink) -> None:
        """The upstream is draining: move what has somewhere else to go, keep the rest."""
        self._suspects[link.key.node_id] = time.monotonic() + _SUSPECT_FOR
        self.check_routes(only=link)

    async def run(self) -> None:
        """Re-subscribe orphaned tracks whenever there are some, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while orphans := self.relay.orphans():
                for track in orphans:
                    await self._reroute(track)
                if self.relay.orphans():
                    await asyncio.sleep(_RETRY_INTERVAL)
            self._orphaned_at.clear()

    async def _reroute(self, track: Track) -> None:
        now = time.monotonic()
        since = self._orphaned_at.setdefault(track, now)
        try:
            upstream = self.resolve(track.namespace)
            link = await self.pool.get(upstream)
        except (TopologyError, UpstreamUnavailable) as exc:
            if now - since >= self._reroute_timeout:
                self._log.warning("reroute_gave_up", track=track.label, error=str(exc))
                self.relay.end_orphan(track, "no upstream for the broadcast")
                self._orphaned_at.pop(track, None)
            return
        assert link.peer is not None
        self.relay.route_namespace(link.peer, track.namespace, None)
        if self.relay.resubscribe(track, link.peer):
            self.reroutes += 1
            self._orphaned_at.pop(track, None)
            self._log.info(
                "rerouted", track=track.label, upstream=link.key.node_id,
                after=round(time.monotonic() - since, 3),
            )  # fmt: skip
