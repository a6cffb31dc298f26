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

The listening, ops port, registry heartbeat, session attach and drain are
:class:`mesh.node.MeshNode`'s; this module holds what only an origin does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mesh.bus import Bus
from mesh.metrics import ReadyCheck
from mesh.node import Downstream, MeshNode
from mesh.node_credential import credential_node
from mesh.relay import CacheLimits, Peer, Relay, RelayConfig
from mesh.settings import parse_hostport
from mesh.topology import NodeRole, is_relay_link_path
from moqt.aio import MoqtConnection
from moqt.errors import PublishDoneCode
from moqt.events import (
    Event,
    PublishNamespaceRequested,
    PublishRequested,
    SessionClosed,
    SetupCompleted,
)
from origin.rtmp import RtmpServer, RtmpServerSettings

from ._inputs import LiveInputs
from .admission import AllowAllAuthorizer, BusStreamKeyAuthorizer, rtmp_authorizer
from .moqt_ingest import MoqtIngest
from .rtmp_ingest import RtmpIngest, RtmpIngestSettings
from .settings import OriginNodeSettings
from .status import StatusReporter

__all__ = ["OriginNode", "OriginStatistics"]

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
class _Downstream(Downstream):
    ingest: MoqtIngest


class OriginNode(MeshNode[_Downstream]):
    """One origin process; ``await start()``, ``await drain()``, ``await stop()``."""

    role: ClassVar[NodeRole] = NodeRole.ORIGIN
    settings: OriginNodeSettings

    def __init__(
        self,
        settings: OriginNodeSettings,
        *,
        certificate: Path,
        private_key: Path,
        bus: Bus | None = None,
    ) -> None:
        super().__init__(settings, certificate=certificate, private_key=private_key, bus=bus)
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
            RtmpIngestSettings(
                ladder=settings.ladder_spec(),
                resume_window=settings.resume_window,
                reconnect_window=settings.publisher_reconnect_window,
            ),
            spawn=self._spawn,
            disconnect=self._disconnect_rtmp,
        )
        self.rtmp: RtmpServer | None = None
        self._ended_refused = 0  # counters of MoQT sessions that are gone
        self._ended_malformed = 0

    # --- lifecycle (the rest is mesh.node.MeshNode) ------------------------------------------

    @property
    def rtmp_address(self) -> tuple[str, int] | None:
        if self.rtmp is None or not self.rtmp.addresses:
            return None
        return self.rtmp.addresses[0]

    async def _open_listeners(self) -> None:
        if self.settings.rtmp:
            rtmp_host, rtmp_port = parse_hostport(self.settings.rtmp)
            self.rtmp = RtmpServer(
                rtmp_authorizer(self.authorizer),
                self.rtmp_ingest.sink_factory,
                RtmpServerSettings(),
            )
            await self.rtmp.start(rtmp_host, rtmp_port)

    def _ready_checks(self) -> dict[str, ReadyCheck]:
        return {"bus": lambda: self.topology is not None and self.topology.bus_up}

    def _jobs(self) -> list[Coroutine[Any, Any, None]]:
        jobs = []
        if isinstance(self.authorizer, BusStreamKeyAuthorizer):
            jobs.append(self.authorizer.run())
        jobs.append(self.reporter.run(self.settings.heartbeat_interval))
        return jobs

    def _listening_fields(self) -> dict[str, object]:
        rtmp = self.rtmp_address
        return {
            "rtmp": f"{rtmp[0]}:{rtmp[1]}" if rtmp else None,
            "publish_auth": self.settings.publish_auth,
        }

    async def _wind_down(self) -> None:
        """No new RTMP publishers; end the broadcasts (GOING_AWAY), their last routes and
        idle reports written within ``_END_TIMEOUT``."""
        if self.rtmp is not None:
            await self.rtmp.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_END_TIMEOUT):
                await self.inputs.end_all(PublishDoneCode.GOING_AWAY, "origin shutting down")

    # --- sessions --------------------------------------------------------------------------

    def _refusal(self) -> str | None:
        # Unlike a POP, a draining origin takes no new session at all.
        return "origin not serving" if self._tg is None or self.draining else None

    def _open_session(self, connection: MoqtConnection, peer: Peer, name: str) -> _Downstream:
        ingest = MoqtIngest(
            connection,
            name,
            authorizer=self.authorizer,
            inputs=self.inputs,
            reconnect_window=self.settings.publisher_reconnect_window,
        )
        return _Downstream(connection, peer, name, ingest)

    async def _handle(self, down: _Downstream, event: Event) -> bool:
        conn, peer, ingest = down.connection, down.peer, down.ingest
        if isinstance(event, SetupCompleted):
            path = conn.path if conn.path is not None else event.path
            ingest.set_setup_tokens(event.auth_tokens, path)
            if is_relay_link_path(path) and credential_node(
                self.settings.cluster_key, event.auth_tokens
            ):
                # A POP (proven by its node credential) fans out to its viewers: drop at
                # the edge, not here.
                self.relay.mark_relay_link(peer)
            self.relay.handle_event(peer, event)
        elif isinstance(event, PublishNamespaceRequested):
            await ingest.on_publish_namespace(event)
        elif isinstance(event, PublishRequested):
            await ingest.on_publish(event)
        elif isinstance(event, SessionClosed):
            return False
        elif ingest.owns(event):
            ingest.on_event(event)
        else:
            self.relay.handle_event(peer, event)
        return True

    def _session_ended(self, down: _Downstream) -> None:
        self._ended_refused += down.ingest.refused
        self._ended_malformed += down.ingest.malformed
        down.ingest.on_closed()

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

    # --- metrics -------------------------------------------------------------------------

    def _update_load(self) -> None:
        m = self.metrics
        publishers = sum(1 for d in self._downstream.values() if d.ingest.inputs())
        m.sessions.labels("publisher").set(publishers)
        m.sessions.labels("viewer").set(len(self._downstream) - publishers)
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
            draining=self.draining,
        )
