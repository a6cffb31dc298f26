"""The POP node: viewers in, one upstream subscription per track out, all on one UDP port.

:class:`PopNode` wires the parts together:

* a MoQT server (raw QUIC + WebTransport) whose sessions are viewers, or relay
  links from child POPs; each session's events are handled in order by its own
  task, because admission awaits (token verification, upstream connection);
* :class:`~pop._admission.Gatekeeper` (JWT, guard against revocation / expiry);
* :class:`~pop._relay.PopRelay` (the shared relay core: cache, merging, forwarding);
* :class:`~pop._upstream.UpstreamPool` (client sessions to origins / parent POPs),
  chosen by :class:`mesh.topology.Topology`, which also heartbeats this node;
* the revocation set, JWKS, metrics and the ``/metrics`` ``/healthz`` ``/readyz``
  port, and a graceful drain (GOAWAY, then close what is left): the listening, ops
  port, registry heartbeat, session attach and drain are :class:`mesh.node.MeshNode`'s.

Re-routing: when an upstream goes away (its session ends, its live tracks go
silent for ``upstream_stall`` seconds (a setting; 0: never), Redis reports the node down, it sends
GOAWAY while another upstream has the broadcast, or the namespace's route moves
to another origin) the relay keeps
the viewers' subscriptions and this node re-subscribes the tracks at the newly
resolved upstream from the next group; if none is found within
``reroute_timeout`` seconds the viewers get PUBLISH_DONE.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mesh.auth import AuthError, AuthFailure, TokenVerifier
from mesh.bus import Bus
from mesh.guard import PlaybackGuard
from mesh.jwks import JwksProvider
from mesh.metrics import ReadyCheck
from mesh.node import Downstream, MeshNode
from mesh.node_credential import mint_node_credential
from mesh.relay import Peer, RelayConfig
from mesh.revocation import RevocationSet
from mesh.settings import PopSettings, parse_hostport
from mesh.topology import NodeInfo, NodeRole, Topology
from moqt.aio import Listener, MoqtConnection, SessionOptions
from moqt.errors import LocalError, RequestErrorCode
from moqt.events import (
    Event,
    FetchRequested,
    PublishNamespaceRequested,
    PublishRequested,
    RequestRejected,
    SessionClosed,
    SetupCompleted,
    SubscribeNamespaceRequested,
    SubscribeRequested,
    TrackStatusReceived,
    TrackStatusRequested,
)
from moqt.types import AuthToken, GroupOrder

from ._admission import Gatekeeper, SessionAuth
from ._listen import bind_udp, serve_socket
from ._publishers import EdgePublisher, EdgePublishing, choose_ingest_origin
from ._relay import PopRelay
from ._retry import GuardedQuicServer
from ._routing import Router
from ._upstream import UpstreamPool

__all__ = ["PopNode", "PopStatistics"]


@dataclass(frozen=True, slots=True)
class PopStatistics:
    viewers: int
    publishers: int  # sessions carried to an origin (docs/edge-publishing.md)
    relay_links: int
    upstream_links: int
    orphaned_tracks: int
    reroutes: int
    draining: bool


@dataclass(slots=True, eq=False)
class _Downstream(Downstream):
    auth: SessionAuth
    timer: asyncio.TimerHandle | None = None  # the deadline for a token, if none came yet
    setup_tokens: tuple[AuthToken, ...] = ()
    setup_path: str | None = None
    publisher: EdgePublisher | None = None  # a publisher carried to an origin (issue 12)


class PopNode(MeshNode[_Downstream]):
    """One POP process (or one worker of it); see the module docstring.

    ``await node.start()`` binds and starts everything; ``await node.drain()``
    sends GOAWAY and waits for viewers to leave; ``await node.stop()`` ends it.
    """

    role: ClassVar[NodeRole] = NodeRole.POP
    session_queue: ClassVar[str] = "viewer_events"
    settings: PopSettings
    relay: PopRelay

    def __init__(
        self,
        settings: PopSettings,
        *,
        certificate: Path,
        private_key: Path,
        bus: Bus | None = None,
        reuse_port: bool = False,
        auth_timeout: float = 10.0,
        reroute_timeout: float = 15.0,
        upstream_idle_timeout: float = 30.0,
        upstream_cafile: str | None = None,
    ) -> None:
        super().__init__(settings, certificate=certificate, private_key=private_key, bus=bus)
        self._reuse_port = reuse_port
        self._auth_timeout = auth_timeout
        self.revocations = RevocationSet()
        self.revocations.add_listener(lambda _r: self.metrics.revocations_applied.inc())
        self.guard = PlaybackGuard(self.revocations)
        self.jwks = JwksProvider(
            settings.jwks,
            bus=self.bus,
            max_age=settings.jwks_max_age,
            min_refresh_interval=settings.jwks_refresh_interval,
        )
        self.verifier = TokenVerifier(
            self.jwks, audience=settings.audience, revocations=self.revocations
        )
        self.gate = Gatekeeper(
            self.verifier,
            self.guard,
            self.metrics,
            is_pop=self._is_pop,
            cluster_key=settings.cluster_key,
        )
        self.relay = PopRelay(RelayConfig(), linger=settings.linger)
        self._options = SessionOptions(implementation="clutchcall-pop")
        self.router = Router(self.relay, node_id=settings.node_id, reroute_timeout=reroute_timeout)
        self.pool = UpstreamPool(
            self.relay,
            options=self._options,
            on_lost=self.router.on_link_lost,
            idle_timeout=upstream_idle_timeout,
            stall_timeout=settings.upstream_stall or None,  # 0: off
            # Cluster links verify the upstream's certificate when a CA is given.
            verify=upstream_cafile is not None,
            cafile=upstream_cafile,
            observe_forwarding=self.metrics.object_latency.observe,
            on_goaway=self.router.on_upstream_goaway,
            # Upstream links on the node's stack too: on picoquic the packet work of the
            # origin -> POP link leaves the thread that fans objects out to the viewers.
            stack=settings.quic_stack,
            congestion_control=settings.quic_congestion_control,
            credential=self._node_credential,
        )
        # Publishers that reach this POP are carried to an origin (docs/edge-publishing.md).
        self._edge = EdgePublishing(
            self._choose_ingest_origin,
            verify=upstream_cafile is not None,
            cafile=upstream_cafile,
            stack=settings.quic_stack,
            congestion_control=settings.quic_congestion_control,
        )

    # --- lifecycle (the rest is mesh.node.MeshNode) ------------------------------------

    async def _listen(self) -> Listener:
        """Serve on a socket bound here: ``--workers`` share the UDP port (SO_REUSEPORT).
        On picoquic too (a socket bound here is handed to its loop), which validates
        addresses itself, with the same ``quic_retry`` / ``retry_threshold``."""
        if self.settings.quic_stack == "picoquic":
            from moqt.aio import serve_picoquic

            host, port = parse_hostport(self.settings.quic)
            picoquic = await serve_picoquic(
                host,
                port,
                certificate=self._certificate,
                private_key=self._private_key,
                on_session=self._on_session,
                options=self._session_options(),
                max_connections=self.settings.max_connections,
                reuse_port=self._reuse_port,
                stream_buffer=self.settings.quic_stream_buffer,
                congestion_control=self.settings.quic_congestion_control,
                send_quantum=self.settings.quic_send_quantum,
                busy_connections=self.settings.quic_busy_connections,
                busy_send_quantum=self.settings.quic_busy_send_quantum,
                retry=self.settings.quic_retry,
                retry_threshold=self.settings.retry_threshold,
            )
            self.metrics.watch_statistics("pop_quic", picoquic.statistics)
            return picoquic
        host, port = parse_hostport(self.settings.quic)
        sock = bind_udp(host, port, reuse_port=self._reuse_port)
        try:
            return await serve_socket(
                sock,
                configuration=self._server_configuration(),
                on_session=self._on_session,
                options=self._session_options(),
                max_connections=self.settings.max_connections,
                retry=self.settings.quic_retry,
                retry_threshold=self.settings.retry_threshold,
                on_server=self._watch_quic,
            )
        except BaseException:
            sock.close()
            raise

    def _ready_checks(self) -> dict[str, ReadyCheck]:
        return {"jwks": lambda: bool(self.jwks.keys())}

    def _watch_quic(self, server: GuardedQuicServer) -> None:
        # Retries and half-open handshakes as clutchcall_pop_quic_* gauges.
        self.metrics.watch_statistics("pop_quic", server.statistics)

    def _listening_fields(self) -> dict[str, object]:
        # Without a cluster key no relay link can prove itself: they are all viewers.
        return {"relay_links": "authenticated" if self.settings.cluster_key else "no cluster_key"}

    def _node_credential(self) -> str | None:
        """What this POP's upstream links present: proof that it is a node of the cluster."""
        if not self.settings.cluster_key:
            return None
        return mint_node_credential(self.settings.cluster_key, self.settings.node_id)

    def _new_topology(self, node: NodeInfo) -> Topology:
        topology = Topology(
            self.bus,
            node,
            heartbeat_interval=self.settings.heartbeat_interval,
            ttl=self.settings.node_ttl,
            parent_regions=self.settings.parent_regions,
            max_hops=self.settings.max_hops,
        )
        self.router.bind(self.pool, topology)
        return topology

    def _jobs(self) -> list[Coroutine[Any, Any, None]]:
        return [
            self.revocations.run(self.bus),
            self.guard.run(),
            self.jwks.run(),
            self.pool.run(),
            self.router.run(),
        ]

    async def stop(self) -> None:
        await super().stop()
        self.guard.close()  # its revocation listener goes with the node

    def _is_pop(self, node_id: str) -> bool:
        if self.topology is None:
            return False
        node = self.topology.nodes().get(node_id)
        return node is not None and node.role is NodeRole.POP and node_id != self.settings.node_id

    def _goaway_uri(self, down: _Downstream) -> str:
        """Where a draining POP moves a viewer (or edge publisher): the least loaded other
        live POP of its region that is not draining itself (:meth:`MeshNode.drain` waits
        until this node knows the others that drain with it), on the same transport,
        path and token; ``""`` when there is none (the client reconnects where it came
        from) and for relay links (their POP re-resolves its upstream from the topology)."""
        if down.auth.relay_link or self.topology is None:
            return ""
        others = [
            n
            for n in self.topology.nodes().values()
            if n.role is NodeRole.POP
            and n.region == self.settings.region
            and n.node_id != self.settings.node_id
            and not n.draining  # it would send them on again (or back here)
        ]
        if not others:
            return ""
        target = min(others, key=lambda n: (sum(n.load.values()), n.node_id))
        if down.connection.path is not None:  # WebTransport: its CONNECT path
            return f"https://{target.quic}{down.connection.path}"
        return f"moqt://{target.quic}{down.setup_path or ''}"

    # --- downstream sessions -------------------------------------------------------------

    def _open_session(self, connection: MoqtConnection, peer: Peer, name: str) -> _Downstream:
        def close(code: int, reason: str) -> None:
            connection.close(code, reason)

        return _Downstream(connection, peer, name, self.gate.open(name, close))

    async def _handle(self, down: _Downstream, event: Event) -> bool:
        conn, peer, auth = down.connection, down.peer, down.auth
        if isinstance(event, SetupCompleted):
            down.setup_tokens = event.auth_tokens
            down.setup_path = conn.path if conn.path is not None else event.path
            if not await self.gate.on_setup(auth, event, conn.path):
                return True
            if auth.relay_link:
                # A child POP fans out to its own viewers: drop at the edge, not here.
                self.relay.mark_relay_link(peer)
            if not auth.claims and not auth.relay_link:
                down.timer = asyncio.get_running_loop().call_later(
                    self._auth_timeout, self._auth_deadline, auth
                )
            self.relay.handle_event(peer, event)
        elif isinstance(event, SessionClosed):
            if down.publisher is not None:
                down.publisher.close(event.reason or "publisher went away")
            self.relay.handle_event(peer, event)
        elif down.publisher is not None and down.publisher.owns(event):
            down.publisher.on_event(event)
        elif not auth.closed:
            await self._on_request(down, event)
        return True

    def _session_ended(self, down: _Downstream) -> None:
        if down.timer is not None:
            down.timer.cancel()
        if down.publisher is not None:
            down.publisher.close()
        self.gate.release(down.auth)

    def _auth_deadline(self, auth: SessionAuth) -> None:
        if not auth.claims and not auth.closed:
            self.gate.refuse(auth, AuthError(AuthFailure.MISSING, "no token in time"))

    async def _on_request(self, down: _Downstream, event: Event) -> None:
        peer, auth = down.peer, down.auth
        if isinstance(event, PublishRequested | PublishNamespaceRequested):
            await self._publish(down, event)
            return
        if isinstance(event, SubscribeNamespaceRequested):
            self._reject(
                peer, event.request_id, RequestErrorCode.NOT_SUPPORTED, "not offered by POPs"
            )
            return
        if isinstance(event, SubscribeRequested | FetchRequested | TrackStatusRequested):
            if isinstance(event, FetchRequested) and not event.namespace:
                # A joining FETCH names its subscription, which was authorized already.
                self.relay.handle_event(peer, event)
                return
            token = await self.gate.authorize(auth, event.namespace, event.auth_tokens)
            if token is None:
                if auth.relay_link:
                    self._reject(
                        peer, event.request_id, RequestErrorCode.UNAUTHORIZED, "auth_failed"
                    )
                return
            self.relay.remember_token(event.namespace, token.encode())
            if isinstance(event, SubscribeRequested):
                error = await self.router.ensure_route(
                    event.namespace, event.name, auth.hops, token
                )
                if error is not None:
                    self._reject(peer, event.request_id, error[0], error[1])
                    return
                await self.router.room_for(event.namespace, event.name)
            elif isinstance(event, TrackStatusRequested):
                status = await self.router.track_status(
                    event.namespace, event.name, auth.hops, token
                )
                if status is not None:
                    self._answer_status(peer, event.request_id, status)
                    return
            if down.connection.is_closed or auth.closed:
                return
        self.relay.handle_event(peer, event)

    async def _publish(
        self, down: _Downstream, event: PublishRequested | PublishNamespaceRequested
    ) -> None:
        """A publisher at the edge: carried to an origin, which checks its stream key."""
        if down.auth.relay_link:
            self._reject(
                down.peer,
                event.request_id,
                RequestErrorCode.NOT_SUPPORTED,
                "relay links do not publish",
            )
            return
        if down.publisher is None:
            down.publisher = EdgePublisher(down.connection, down.name, self._edge)
            down.publisher.set_setup(down.setup_tokens, down.setup_path)
        if isinstance(event, PublishNamespaceRequested):
            admitted = await down.publisher.on_publish_namespace(event)
        else:
            admitted = await down.publisher.on_publish(event)
        if admitted and down.timer is not None:  # an admitted publisher needs no playback token
            down.timer.cancel()
            down.timer = None

    def _choose_ingest_origin(self, namespace: str) -> NodeInfo | None:
        if self.topology is None:
            return None
        route = self.topology.route(namespace)
        return choose_ingest_origin(
            self.topology.nodes(), self.settings.region, route.origin if route else None
        )

    def _answer_status(self, peer: Peer, request_id: int, status: Event | tuple[int, str]) -> None:
        """Pass the upstream's answer to a TRACK_STATUS on (or our error)."""
        if isinstance(status, TrackStatusReceived):
            order = status.group_order
            try:
                peer.session.answer_track_status(
                    request_id,
                    largest=status.largest,
                    expires=status.expires,
                    group_order=GroupOrder.ASCENDING if order == GroupOrder.ORIGINAL else order,
                )
            except LocalError as exc:
                self._log.debug("track_status_answer_failed", error=str(exc))
        elif isinstance(status, RequestRejected):
            code = status.error if status.error is not None else status.code
            self._reject(peer, request_id, code, status.reason)
        elif isinstance(status, tuple):
            self._reject(peer, request_id, status[0], status[1])

    def _reject(self, peer: Peer, request_id: int, code: int, reason: str) -> None:
        try:
            peer.session.reject_request(request_id, code, reason)
        except LocalError as exc:
            self._log.debug("reject_failed", error=str(exc))

    # --- metrics -------------------------------------------------------------------------

    def _session_counts(self) -> tuple[int, int, int]:
        """Viewers, publishers (admitted by an origin through us) and relay links."""
        downs = list(self._downstream.values())
        relays = sum(1 for d in downs if d.auth.relay_link)
        publishers = sum(1 for d in downs if d.publisher is not None and d.publisher.active)
        return len(downs) - relays - publishers, publishers, relays

    def _update_load(self) -> None:
        m = self.metrics
        viewers, publishers, relays = self._session_counts()
        m.sessions.labels("viewer").set(viewers)
        m.sessions.labels("publisher").set(publishers)
        m.sessions.labels("relay").set(relays)
        if self.topology is not None:
            self.topology.set_load(sessions=float(viewers + publishers))

    def statistics(self) -> PopStatistics:
        viewers, publishers, relays = self._session_counts()
        return PopStatistics(
            viewers=viewers,
            publishers=publishers,
            relay_links=relays,
            upstream_links=len(self.pool.links()),
            orphaned_tracks=len(self.relay.orphans()),
            reroutes=self.router.reroutes,
            draining=self.draining,
        )
