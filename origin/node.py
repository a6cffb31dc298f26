"""The origin node: publishers in (MoQT fMP4 and RTMP), tracks out to POPs and viewers.

:class:`OriginNode` wires the parts together on one event loop:

* a MoQT server (raw QUIC + WebTransport, one UDP port) whose sessions are read by
  one task each: publishing requests (PUBLISH_NAMESPACE / PUBLISH) go to that
  session's :class:`~origin.moqt_ingest.MoqtIngest` (stream-key admission,
  validation), everything else to the shared relay core (:class:`mesh.relay.Relay`),
  so POPs and viewers are ordinary MoQT subscribers;
* the RTMP server (``origin.rtmp``) feeding :class:`~origin.rtmp_ingest.RtmpIngest`;
* :class:`~origin._inputs.LiveInputs`: one :class:`~origin.broadcast.Broadcast` per
  live input, whatever the ingest path, published into the relay in-process;
* the stream-key authorizer (``origin.admission``; Redis-backed, or
  ``--publish-auth none``) whose rotation/deletion notices end the broadcasts
  admitted with the old key at once;
* :class:`mesh.topology.Topology` (role ``origin``): the node record with
  heartbeat and a ``clutchcall:route:<namespace>`` per hosted broadcast;
* input status reports for the control plane (``origin.status``), ``/metrics``,
  ``/healthz``, ``/readyz``, and a drain on SIGTERM (GOAWAY, broadcasts end
  with GOING_AWAY, route and node record withdrawn).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from mesh._topology_types import NodeInfo, NodeRole
from mesh.bus import Bus, connect_bus
from mesh.logging import bind_context
from mesh.metrics import NodeMetrics, OpsServer
from mesh.relay import CacheLimits, Peer, Relay, RelayConfig
from mesh.settings import parse_hostport
from mesh.topology import Topology, is_relay_link_path
from moqt.aio import MoqtConnection, MoqtServer, SessionOptions, serve, server_configuration
from moqt.errors import LocalError, PublishDoneCode, SessionCloseCode
from moqt.events import PublishNamespaceRequested, PublishRequested, SessionClosed, SetupCompleted
from origin.rtmp import RtmpServer, RtmpServerSettings

from ._inputs import LiveInputs
from .admission import AllowAllAuthorizer, BusStreamKeyAuthorizer, rtmp_authorizer
from .moqt_ingest import MoqtIngest
from .rtmp_ingest import RtmpIngest, RtmpIngestSettings
from .settings import OriginNodeSettings
from .status import StatusReporter

__all__ = ["OriginNode", "OriginStatistics"]

_log = structlog.get_logger("origin.node")
_POLL_INTERVAL = 0.25
# Bound on writing the last routes and idle reports at shutdown (Redis may be away).
_END_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class OriginStatistics:
    sessions: int
    publishers: int
    live_inputs: int
    broadcasts_started: int
    broadcasts_kicked: int
    moqt_refused: int
    moqt_malformed: int
    rtmp_publishes: int
    ffmpeg_starts: int
    ffmpeg_failures: int
    rtmp_tags_dropped: int
    draining: bool


@dataclass(slots=True, eq=False)
class _Downstream:
    connection: MoqtConnection
    peer: Peer
    ingest: MoqtIngest


class OriginNode:
    """One origin process; ``await start()``, ``await drain()``, ``await stop()``."""

    def __init__(
        self,
        settings: OriginNodeSettings,
        *,
        certificate: Path,
        private_key: Path,
        bus: Bus | None = None,
    ) -> None:
        self.settings = settings
        self._certificate = certificate
        self._private_key = private_key
        self._own_bus = bus is None
        self.bus: Bus = bus if bus is not None else connect_bus(settings.redis)
        self.metrics = NodeMetrics(node=settings.node_id, role="origin", region=settings.region)
        self.relay = Relay(
            RelayConfig(
                cache=CacheLimits(max_bytes=settings.cache_bytes, max_age=settings.cache_age),
                max_object_size=settings.max_object_size,
            )
        )
        self.reporter = StatusReporter(
            self.bus, node_id=settings.node_id, live_ttl=settings.node_ttl
        )
        self.authorizer: BusStreamKeyAuthorizer | AllowAllAuthorizer
        if settings.publish_auth == "none":
            self.authorizer = AllowAllAuthorizer(org_id=settings.dev_org)
        else:
            self.authorizer = BusStreamKeyAuthorizer(self.bus, on_key_revoked=self._on_key_revoked)
        self.inputs = LiveInputs(
            self.relay, self.reporter, spawn=self._spawn, on_route=self._route,
            release=self._release,
        )  # fmt: skip
        self.rtmp_ingest = RtmpIngest(
            self.inputs,
            RtmpIngestSettings(ladder=settings.ladder_spec(), resume_window=settings.resume_window),
            spawn=self._spawn,
            disconnect=self._disconnect_rtmp,
        )
        self.rtmp: RtmpServer | None = None
        self.topology: Topology | None = None
        self._server: MoqtServer | None = None
        self._ops: OpsServer | None = None
        self._downstream: dict[MoqtConnection, _Downstream] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._started = asyncio.Event()
        self._draining = False
        self._stopped = False
        self._last_stats: dict[str, int] = {}
        self._ended_refused = 0  # counters of MoQT sessions that are gone
        self._ended_malformed = 0
        self._log = _log.bind(node=settings.node_id)

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def quic_address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("the origin is not listening")
        return self._server.address

    @property
    def http_address(self) -> tuple[str, int]:
        if self._ops is None:
            raise RuntimeError("the origin is not listening")
        return parse_hostport(self.settings.http)[0], self._ops.port

    @property
    def rtmp_address(self) -> tuple[str, int] | None:
        if self.rtmp is None or not self.rtmp.addresses:
            return None
        return self.rtmp.addresses[0]

    @property
    def draining(self) -> bool:
        return self._draining

    async def start(self) -> None:
        host, port = parse_hostport(self.settings.quic)
        self._server = await serve(
            host,
            port,
            configuration=server_configuration(self._certificate, self._private_key),
            on_session=self._on_session,
            options=SessionOptions(
                max_object_size=self.settings.max_object_size,
                implementation="clutchcall-origin",
            ),
        )
        try:
            if self.settings.rtmp:
                rtmp_host, rtmp_port = parse_hostport(self.settings.rtmp)
                self.rtmp = RtmpServer(
                    rtmp_authorizer(self.authorizer),
                    self.rtmp_ingest.sink_factory,
                    RtmpServerSettings(),
                )
                await self.rtmp.start(rtmp_host, rtmp_port)
            http_host, http_port = parse_hostport(self.settings.http)
            self._ops = OpsServer(
                self.metrics,
                http_host,
                http_port,
                ready={
                    "listening": lambda: self._server is not None,
                    "serving": self._serving,
                    "bus": lambda: self.topology is not None and self.topology.bus_up,
                },
            )
            await self._ops.__aenter__()
        except BaseException:
            await self.stop()
            raise
        self.metrics.watch_statistics("origin", self.statistics)
        self.metrics.watch_statistics("origin_relay", self.relay.statistics)
        self.topology = Topology(
            self.bus,
            NodeInfo(
                self.settings.node_id,
                NodeRole.ORIGIN,
                self.settings.region,
                self._advertised(),
                http="{}:{}".format(*self.http_address),
            ),
            heartbeat_interval=self.settings.heartbeat_interval,
            ttl=self.settings.node_ttl,
        )
        self._task = asyncio.create_task(self._main(), name=f"origin-{self.settings.node_id}")
        self._task.add_done_callback(self._main_done)
        await self._started.wait()
        await self.topology.wait_ready()
        rtmp = self.rtmp_address
        self._log.info(
            "origin_listening",
            quic="{}:{}".format(*self.quic_address),
            http="{}:{}".format(*self.http_address),
            rtmp=f"{rtmp[0]}:{rtmp[1]}" if rtmp else None,
            advertise=self.topology.node.quic,
            publish_auth=self.settings.publish_auth,
        )

    def _advertised(self) -> str:
        if self.settings.advertise:
            return self.settings.advertise
        host, port = self.quic_address
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostbyname(socket.gethostname())
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _main_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._log.error("origin_failed", error=repr(task.exception()))

    async def _main(self) -> None:
        assert self.topology is not None
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self.topology.run())
            if isinstance(self.authorizer, BusStreamKeyAuthorizer):
                tg.create_task(self.authorizer.run())
            tg.create_task(self._housekeeping())
            tg.create_task(self.reporter.run(self.settings.heartbeat_interval))
            self._started.set()

    def _serving(self) -> bool:
        return not self._draining and self._task is not None and not self._task.done()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the node's TaskGroup; its failure is logged, never fatal."""
        if self._tg is not None:
            try:
                self._tg.create_task(_guarded(coro, self._log))
                return
            except RuntimeError:  # the TaskGroup is shutting down
                pass
        coro.close()
        self._log.warning("task_dropped", reason="origin not running")

    async def drain(self, grace: float | None = None) -> None:
        """GOAWAY to every session, end the broadcasts (GOING_AWAY), wait for sessions."""
        self._draining = True
        self._log.info("origin_draining", sessions=len(self._downstream))
        for down in list(self._downstream.values()):
            self._goaway(down.connection)
        if self.rtmp is not None:
            await self.rtmp.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_END_TIMEOUT):
                await self.inputs.end_all(PublishDoneCode.GOING_AWAY, "origin shutting down")
        closing = [asyncio.ensure_future(c.wait_closed()) for c in list(self._downstream)]
        if closing:
            await asyncio.wait(
                closing, timeout=self.settings.drain_timeout if grace is None else grace
            )
            for future in closing:
                future.cancel()
            await asyncio.gather(*closing, return_exceptions=True)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._draining = True
        if self.rtmp is not None:
            await self.rtmp.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_END_TIMEOUT):
                await self.inputs.end_all(PublishDoneCode.GOING_AWAY, "origin shutting down")
        for conn in list(self._downstream):
            conn.close(SessionCloseCode.NO_ERROR, "origin shutting down")
        waits = [c.wait_closed(grace=1.0) for c in list(self._downstream)]
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)
        if self.topology is not None:
            await self.topology.leave()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self._tg = None
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._ops is not None:
            await self._ops.__aexit__(None, None, None)
            self._ops = None
        if self._own_bus:
            await self.bus.close()
        self._log.info("origin_stopped")

    # --- sessions --------------------------------------------------------------------------

    def _on_session(self, connection: MoqtConnection) -> None:
        name = f"{self.settings.node_id}/s{next(self._ids)}"
        if self._tg is None or self._draining:
            connection.close(SessionCloseCode.INTERNAL_ERROR, "origin not serving")
            return
        peer = self.relay.attach(connection.session, name, send_backlog=connection.send_backlog)
        # ACKs arrived: the connection may take what the peer's relay scheduler holds.
        connection.set_writable_handler(lambda: self.relay.pump(peer))
        ingest = MoqtIngest(connection, name, authorizer=self.authorizer, inputs=self.inputs)
        down = _Downstream(connection, peer, ingest)
        self._downstream[connection] = down
        self._tg.create_task(self._serve(down), name=name)

    async def _serve(self, down: _Downstream) -> None:
        conn, peer, ingest = down.connection, down.peer, down.ingest
        with bind_context(session=ingest.name):
            self._log.info(
                "session_opened", session=ingest.name, transport=conn.transport_name,
                peer=conn.remote_address,
            )  # fmt: skip
            try:
                async for event in conn.events():
                    if isinstance(event, SetupCompleted):
                        ingest.set_setup_tokens(event.auth_tokens)
                        if is_relay_link_path(conn.path if conn.path is not None else event.path):
                            # A POP fans out to its viewers: drop at the edge, not here.
                            self.relay.mark_relay_link(peer)
                        self.relay.handle_event(peer, event)
                        if self._draining:
                            self._goaway(conn)
                    elif isinstance(event, PublishNamespaceRequested):
                        await ingest.on_publish_namespace(event)
                    elif isinstance(event, PublishRequested):
                        await ingest.on_publish(event)
                    elif isinstance(event, SessionClosed):
                        break
                    elif ingest.owns(event):
                        ingest.on_event(event)
                    else:
                        self.relay.handle_event(peer, event)
            except Exception:
                self._log.exception("session_failed", session=ingest.name)
                conn.close(SessionCloseCode.INTERNAL_ERROR, "internal error")
            finally:
                self._downstream.pop(conn, None)
                self._ended_refused += ingest.refused
                self._ended_malformed += ingest.malformed
                try:
                    ingest.on_closed()
                    self.relay.detach(peer)
                except Exception:
                    self._log.exception("session_cleanup_failed", session=ingest.name)

    def _goaway(self, conn: MoqtConnection) -> None:
        if conn.is_closed or not conn.session.setup_complete:
            return
        try:
            conn.session.goaway(timeout=self.settings.drain_timeout)
        except LocalError as exc:
            self._log.debug("goaway_failed", error=str(exc))

    # --- inputs ----------------------------------------------------------------------------

    async def _route(self, namespace: str, up: bool) -> None:
        if self.topology is None:
            return
        if up:
            await self.topology.announce(namespace)
        else:
            await self.topology.withdraw(namespace)

    def _release(self, external_input_id: str) -> None:
        if isinstance(self.authorizer, BusStreamKeyAuthorizer):
            self.authorizer.release(external_input_id)

    async def _on_key_revoked(self, external_input_id: str, event: str) -> None:
        reason = "stream key deleted" if event == "deleted" else "stream key rotated"
        await self.inputs.kick(external_input_id, reason)
        # Publishers admitted with the old key whose broadcast has not begun yet: a MoQT
        # publisher still waiting for its catalog, an RTMP publish whose ladder is starting.
        for down in list(self._downstream.values()):
            if external_input_id in down.ingest.inputs():
                await down.ingest.kick(reason)
        if self.rtmp is not None and external_input_id in self.rtmp.live_inputs():
            await self.rtmp.disconnect(external_input_id, reason)

    async def _disconnect_rtmp(self, external_input_id: str, reason: str) -> bool:
        if self.rtmp is None:
            return False
        return await self.rtmp.disconnect(external_input_id, reason)

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
                try:
                    self._update_metrics()
                except Exception:
                    self._log.exception("metrics_update_failed")

    def _update_metrics(self) -> None:
        stats = self.relay.statistics()
        m = self.metrics
        publishers = sum(1 for d in self._downstream.values() if d.ingest.inputs())
        m.sessions.labels("publisher").set(publishers)
        m.sessions.labels("viewer").set(len(self._downstream) - publishers)
        m.absorb_relay_statistics(stats, self._last_stats)
        self._last_stats = stats
        m.bus_up.set(1 if self.topology is not None and self.topology.bus_up else 0)
        m.queue_depth.labels("session_events").set(
            sum(d.connection.statistics()["queued_events"] for d in self._downstream.values())
        )
        if self.topology is not None:
            self.topology.set_load(
                sessions=float(len(self._downstream)), broadcasts=float(len(self.inputs.all()))
            )

    def statistics(self) -> OriginStatistics:
        rtmp = self.rtmp_ingest.statistics()
        downs = list(self._downstream.values())
        return OriginStatistics(
            sessions=len(downs),
            publishers=sum(1 for d in downs if d.ingest.inputs()),
            live_inputs=len(self.inputs.all()),
            broadcasts_started=self.inputs.started_total,
            broadcasts_kicked=self.inputs.kicked_total,
            moqt_refused=self._ended_refused + sum(d.ingest.refused for d in downs),
            moqt_malformed=self._ended_malformed + sum(d.ingest.malformed for d in downs),
            rtmp_publishes=rtmp.publishes,
            ffmpeg_starts=rtmp.ffmpeg_starts,
            ffmpeg_failures=rtmp.ffmpeg_failures,
            rtmp_tags_dropped=rtmp.tags_dropped,
            draining=self._draining,
        )


async def _guarded(coro: Coroutine[Any, Any, None], log: Any) -> None:
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("origin_task_failed")
