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
  port, and a graceful drain (GOAWAY, then close what is left).

Re-routing: when an upstream goes away (its session ends, its live tracks go
silent for ``upstream_stall`` seconds, Redis reports the node down, it sends
GOAWAY while another upstream has the broadcast, or the namespace's route moves
to another origin) the relay keeps
the viewers' subscriptions and this node re-subscribes the tracks at the newly
resolved upstream from the next group; if none is found within
``reroute_timeout`` seconds the viewers get PUBLISH_DONE.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass
from pathlib import Path

import structlog

from mesh._topology_types import (
    NodeInfo,
    NodeRole,
)
from mesh.auth import AuthError, AuthFailure, TokenVerifier
from mesh.bus import Bus, connect_bus
from mesh.guard import PlaybackGuard
from mesh.jwks import JwksProvider
from mesh.logging import bind_context
from mesh.metrics import NodeMetrics, OpsServer
from mesh.relay import Peer, RelayConfig
from mesh.revocation import RevocationSet
from mesh.settings import PopSettings, parse_hostport
from mesh.topology import Topology
from moqt.aio import MoqtConnection, MoqtServer, SessionOptions, server_configuration
from moqt.errors import LocalError, RequestErrorCode, SessionCloseCode
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
from moqt.types import GroupOrder

from ._admission import Gatekeeper, SessionAuth
from ._advertise import advertised_host, format_hostport
from ._listen import bind_udp, serve_socket
from ._relay import PopRelay
from ._routing import Router
from ._upstream import UpstreamPool

__all__ = ["PopNode", "PopStatistics"]

_log = structlog.get_logger("pop.node")

_POLL_INTERVAL = 0.25


@dataclass(frozen=True, slots=True)
class PopStatistics:
    viewers: int
    relay_links: int
    upstream_links: int
    orphaned_tracks: int
    reroutes: int
    draining: bool


@dataclass(slots=True, eq=False)
class _Downstream:
    connection: MoqtConnection
    peer: Peer
    auth: SessionAuth


class PopNode:
    """One POP process (or one worker of it); see the module docstring.

    ``await node.start()`` binds and starts everything; ``await node.drain()``
    sends GOAWAY and waits for viewers to leave; ``await node.stop()`` ends it.
    """

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
        upstream_stall: float | None = 1.5,
        upstream_cafile: str | None = None,
    ) -> None:
        self.settings = settings
        self._certificate = certificate
        self._private_key = private_key
        self._own_bus = bus is None
        self.bus: Bus = bus if bus is not None else connect_bus(settings.redis)
        self._reuse_port = reuse_port
        self._auth_timeout = auth_timeout
        self.metrics = NodeMetrics(node=settings.node_id, role="pop", region=settings.region)
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
        self.gate = Gatekeeper(self.verifier, self.guard, self.metrics, is_pop=self._is_pop)
        self.relay = PopRelay(RelayConfig(), linger=settings.linger)
        self._options = SessionOptions(implementation="clutchcall-pop")
        self.router = Router(self.relay, node_id=settings.node_id, reroute_timeout=reroute_timeout)
        self.pool = UpstreamPool(
            self.relay,
            options=self._options,
            on_lost=self.router.on_link_lost,
            idle_timeout=upstream_idle_timeout,
            stall_timeout=upstream_stall,
            # Cluster links verify the upstream's certificate when a CA is given.
            verify=upstream_cafile is not None,
            cafile=upstream_cafile,
            observe_forwarding=self.metrics.object_latency.observe,
            on_goaway=self.router.on_upstream_goaway,
        )
        self.topology: Topology | None = None
        self._server: MoqtServer | None = None
        self._ops: OpsServer | None = None
        self._downstream: dict[MoqtConnection, _Downstream] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._draining = False
        self._started = asyncio.Event()
        self._last_stats: dict[str, int] = {}
        self._log = _log.bind(node=settings.node_id)

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def quic_address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("the POP is not listening")
        return self._server.address

    @property
    def http_address(self) -> tuple[str, int]:
        if self._ops is None:
            raise RuntimeError("the POP is not listening")
        return parse_hostport(self.settings.http)[0], self._ops.port

    @property
    def draining(self) -> bool:
        return self._draining

    async def start(self) -> None:
        """Listen and join the cluster; :class:`AdvertiseError` (nothing opened yet) when
        bound to a wildcard address with no ``advertise`` and no address to put instead."""
        host, port = parse_hostport(self.settings.quic)
        advertise_host = (
            None if self.settings.advertise else advertised_host(host, self.settings.redis)
        )
        sock = bind_udp(host, port, reuse_port=self._reuse_port)
        try:
            self._server = await serve_socket(
                sock,
                configuration=server_configuration(self._certificate, self._private_key),
                on_session=self._on_session,
                options=SessionOptions(
                    max_object_size=self.relay.config.max_object_size,
                    implementation="clutchcall-pop",
                ),
            )
        except BaseException:
            sock.close()
            raise
        http_host, http_port = parse_hostport(self.settings.http)
        self._ops = OpsServer(
            self.metrics,
            http_host,
            http_port,
            ready={
                "listening": lambda: self._server is not None,
                "serving": self._serving,
                "jwks": lambda: bool(self.jwks.keys()),
            },
        )
        await self._ops.__aenter__()
        self.metrics.watch_statistics("pop", self.statistics)
        self.metrics.watch_statistics("pop_relay", self.relay.statistics)
        self.topology = Topology(
            self.bus,
            NodeInfo(
                self.settings.node_id,
                NodeRole.POP,
                self.settings.region,
                self.settings.advertise
                or format_hostport(advertise_host or host, self.quic_address[1]),
                http=f"{http_host}:{self._ops.port}",
            ),
            heartbeat_interval=self.settings.heartbeat_interval,
            ttl=self.settings.node_ttl,
            parent_regions=self.settings.parent_regions,
            max_hops=self.settings.max_hops,
        )
        self.router.bind(self.pool, self.topology)
        self._task = asyncio.create_task(self._main(), name=f"pop-{self.settings.node_id}")
        self._task.add_done_callback(self._main_done)
        await self._started.wait()
        await self.topology.wait_ready()
        self._log.info(
            "pop_listening",
            quic="{}:{}".format(*self.quic_address),
            http="{}:{}".format(*self.http_address),
            advertise=self.topology.node.quic,
        )

    def _main_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._log.error("pop_failed", error=repr(task.exception()))

    async def _main(self) -> None:
        assert self.topology is not None
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self.topology.run())
            tg.create_task(self.revocations.run(self.bus))
            tg.create_task(self.guard.run())
            tg.create_task(self.jwks.run())
            tg.create_task(self.pool.run())
            tg.create_task(self.router.run())
            tg.create_task(self._housekeeping())
            self._started.set()

    async def drain(self, grace: float | None = None) -> None:
        """GOAWAY to every downstream session; wait (``drain_timeout``) until they left."""
        self._draining = True
        self._log.info("pop_draining", sessions=len(self._downstream))
        for down in list(self._downstream.values()):
            self._goaway(down.connection)
        closing = [asyncio.ensure_future(c.wait_closed()) for c in list(self._downstream)]
        if closing:
            await asyncio.wait(
                closing, timeout=self.settings.drain_timeout if grace is None else grace
            )
            for future in closing:
                future.cancel()
            await asyncio.gather(*closing, return_exceptions=True)

    async def stop(self) -> None:
        self._draining = True
        for conn in list(self._downstream):
            conn.close(SessionCloseCode.NO_ERROR, "pop shutting down")
        waits = [c.wait_closed(grace=1.0) for c in list(self._downstream)]
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self.topology is not None:
            await self.topology.leave()
        self.guard.close()
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._ops is not None:
            await self._ops.__aexit__(None, None, None)
            self._ops = None
        if self._own_bus:
            await self.bus.close()
        self._log.info("pop_stopped")

    def _is_pop(self, node_id: str) -> bool:
        if self.topology is None:
            return False
        node = self.topology.nodes().get(node_id)
        return node is not None and node.role is NodeRole.POP and node_id != self.settings.node_id

    def _serving(self) -> bool:
        return not self._draining and self._task is not None and not self._task.done()

    # --- downstream sessions -------------------------------------------------------------

    def _on_session(self, connection: MoqtConnection) -> None:
        name = f"{self.settings.node_id}/s{next(self._ids)}"
        if self._tg is None:
            connection.close(SessionCloseCode.INTERNAL_ERROR, "pop not running")
            return
        peer = self.relay.attach(connection.session, name, send_backlog=connection.send_backlog)
        # ACKs arrived: the connection may take what the relay's scheduler holds for it.
        connection.set_writable_handler(lambda: self.relay.pump(peer))

        def close(code: int, reason: str) -> None:
            connection.close(code, reason)

        down = _Downstream(connection, peer, self.gate.open(name, close))
        self._downstream[connection] = down
        self._tg.create_task(self._serve(down), name=name)

    async def _serve(self, down: _Downstream) -> None:
        conn, peer, auth = down.connection, down.peer, down.auth
        timer: asyncio.TimerHandle | None = None
        with bind_context(session=auth.name):
            self._log.info(
                "session_opened", session=auth.name, transport=conn.transport_name,
                remote=":".join(map(str, conn.remote_address or ())),
            )  # fmt: skip
            try:
                async for event in conn.events():
                    if isinstance(event, SetupCompleted):
                        if not await self.gate.on_setup(auth, event, conn.path):
                            continue
                        if auth.relay_link:
                            # A child POP fans out to its own viewers: drop at the edge, not here.
                            self.relay.mark_relay_link(peer)
                        if not auth.claims and not auth.relay_link:
                            timer = asyncio.get_running_loop().call_later(
                                self._auth_timeout, self._auth_deadline, auth
                            )
                        self.relay.handle_event(peer, event)
                        if self._draining:
                            self._goaway(conn)
                    elif isinstance(event, SessionClosed):
                        self.relay.handle_event(peer, event)
                    elif not auth.closed:
                        await self._on_request(down, event)
            except Exception:
                self._log.exception("session_failed", session=auth.name)
                conn.close(SessionCloseCode.INTERNAL_ERROR, "internal error")
            finally:
                if timer is not None:
                    timer.cancel()
                self.gate.release(auth)
                self.relay.detach(peer)
                self._downstream.pop(conn, None)

    def _auth_deadline(self, auth: SessionAuth) -> None:
        if not auth.claims and not auth.closed:
            self.gate.refuse(auth, AuthError(AuthFailure.MISSING, "no token in time"))

    async def _on_request(self, down: _Downstream, event: Event) -> None:
        peer, auth = down.peer, down.auth
        if isinstance(event, PublishRequested | PublishNamespaceRequested):
            self._reject(
                peer,
                event.request_id,
                RequestErrorCode.NOT_SUPPORTED,
                "POPs do not take publishers",
            )
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

    def _goaway(self, conn: MoqtConnection) -> None:
        if conn.is_closed or not conn.session.setup_complete:
            return
        try:
            conn.session.goaway(timeout=self.settings.drain_timeout)
        except LocalError as exc:
            self._log.debug("goaway_failed", error=str(exc))

    # --- housekeeping ----------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(_POLL_INTERVAL)
            try:
                self.relay.poll()
            except Exception:
                self._log.exception("relay_poll_failed")
            ticks += 1
            if ticks % 4 == 0:
                self._update_metrics()

    def _update_metrics(self) -> None:
        stats = self.relay.statistics()
        m = self.metrics
        viewers = sum(1 for d in self._downstream.values() if not d.auth.relay_link)
        m.sessions.labels("viewer").set(viewers)
        m.sessions.labels("relay").set(len(self._downstream) - viewers)
        m.absorb_relay_statistics(stats, self._last_stats)
        self._last_stats = stats
        m.bus_up.set(1 if self.topology is not None and self.topology.bus_up else 0)
        m.queue_depth.labels("viewer_events").set(
            sum(d.connection.statistics()["queued_events"] for d in self._downstream.values())
        )
        if self.topology is not None:
            self.topology.set_load(sessions=float(viewers))

    def statistics(self) -> PopStatistics:
        viewers = sum(1 for d in self._downstream.values() if not d.auth.relay_link)
        return PopStatistics(
            viewers=viewers,
            relay_links=len(self._downstream) - viewers,
            upstream_links=len(self.pool.links()),
            orphaned_tracks=len(self.relay.orphans()),
            reroutes=self.router.reroutes,
            draining=self._draining,
        )
