"""The lifecycle every serving node shares: listen, serve ops, join the cluster, drain.

:class:`MeshNode` owns what does not depend on the role (``origin.OriginNode``,
``pop.PopNode``):

* addresses: the QUIC port (raw QUIC + WebTransport; :meth:`MeshNode._listen` is the
  one place a node calls :func:`moqt.aio.serve`), the ops HTTP port, and the address
  the node record advertises;
* the ops server (``/metrics``, ``/healthz``, ``/readyz`` with the ``listening`` and
  ``serving`` checks plus the role's own) and the relay -> metrics sync;
* the node record in the registry (:class:`mesh.topology.Topology`, heartbeat), run in
  the node's TaskGroup next to the role's background jobs;
* its sessions and the drain (it is a :class:`mesh.session_host.SessionHost`: attach,
  SETUP deadline, events in order, GOAWAY, close); on SIGTERM, GOAWAY to every session,
  wait ``drain_timeout`` for them to leave, then :meth:`MeshNode.stop` closes what is
  left, leaves the registry and closes the ports.

A role subclasses it, builds its own parts (``relay`` among them) after
``super().__init__`` and fills in the hooks; what only an origin or a POP does stays
in ``origin/`` and ``pop/``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, ClassVar

import structlog
from aioquic.quic.configuration import QuicConfiguration

from mesh.advertise import advertised_host, format_hostport
from mesh.bus import Bus, connect_bus
from mesh.certificates import NodeCertificate, stack_reloads
from mesh.heap import HeapTrimmer, malloc_trim
from mesh.metrics import NodeMetrics, OpsServer, ReadyCheck
from mesh.relay import Relay
from mesh.session_host import HostedSession, SessionHost
from mesh.settings import NodeSettings, parse_hostport
from mesh.topology import NodeInfo, NodeRole, Topology
from moqt.aio import Listener, MoqtConnection, SessionOptions, listen, serve, server_configuration
from moqt.errors import SessionCloseCode
from moqt.events import Event

__all__ = ["Downstream", "MeshNode"]

_POLL_INTERVAL = 0.25
_METRICS_EVERY = 4  # housekeeping ticks between two metrics updates (one second)

#: One accepted session: its connection, its peer in the relay core, its log name.
Downstream = HostedSession


class MeshNode[D: Downstream](SessionHost[D]):
    """One serving node; ``await start()``, ``await drain()``, ``await stop()``.

    A subclass sets :attr:`role`, assigns ``relay`` in its ``__init__`` and implements
    the abstract hooks (:meth:`statistics`, :meth:`_open_session`, :meth:`_handle`,
    :meth:`_session_ended`, :meth:`_update_load`); the others (``_advertised``,
    ``_listen``, ``_open_listeners``, ``_ready_checks``, ``_new_topology``, ``_jobs``,
    ``_listening_fields``, ``_wind_down``, ``_refusal``, ``_goaway_uri``) default to
    the common case.
    """

    role: ClassVar[NodeRole]
    #: The ``clutchcall_queue_depth`` label of the events queued on downstream sessions.
    session_queue: ClassVar[str] = "session_events"
    settings: NodeSettings
    relay: Relay

    def __init__(
        self,
        settings: NodeSettings,
        *,
        certificate: Path,
        private_key: Path,
        bus: Bus | None = None,
    ) -> None:
        self.settings = settings
        self._certificate = certificate
        self._private_key = private_key
        self._log = structlog.get_logger(f"{self.role}.node").bind(node=settings.node_id)
        try:  # renewed in place when self-signed (where the stack can reload it)
            self.certificate: NodeCertificate | None = NodeCertificate(
                certificate, private_key, renew=stack_reloads(settings.quic_stack)
            )
        except (OSError, ValueError) as exc:  # listening reports it (as it did before)
            self._log.warning("certificate_unreadable", path=str(certificate), error=str(exc))
            self.certificate = None
        self._quic_configurations: list[QuicConfiguration] = []
        self._own_bus = bus is None
        self.bus: Bus = bus if bus is not None else connect_bus(settings.redis)
        self.metrics = NodeMetrics(
            node=settings.node_id, role=self.role.value, region=settings.region
        )
        self.topology: Topology | None = None
        self._server: Listener | None = None
        self._ops: OpsServer | None = None
        self._setup_timeout = settings.setup_timeout
        self._goaway_timeout = settings.drain_timeout
        self._session_prefix = f"{settings.node_id}/"
        self._init_sessions()
        self._task: asyncio.Task[None] | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._started = asyncio.Event()
        self._advertise_host: str | None = None
        self._stopped = False
        self._last_stats: dict[str, int] = {}

    # --- addresses ----------------------------------------------------------------------

    @property
    def quic_address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError(f"the {self.role} is not listening")
        return self._server.address

    @property
    def http_address(self) -> tuple[str, int]:
        if self._ops is None:
            raise RuntimeError(f"the {self.role} is not listening")
        return parse_hostport(self.settings.http)[0], self._ops.port

    def _advertised(self) -> str:
        """``HOST:PORT`` the other nodes dial, for the node record (called once listening):
        ``advertise``, else the bound address when it is specific, else the route to Redis
        (never the host name's 127.0.1.1 on Debian, which no other machine can dial)."""
        if self.settings.advertise:
            return self.settings.advertise
        assert self._advertise_host is not None  # found by start() before listening
        return format_hostport(self._advertise_host, self.quic_address[1])

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the QUIC port, the role's other ports and the ops port, then join the
        cluster; returns once serving. A failure after the QUIC port is open stops the node;
        :class:`mesh.advertise.AdvertiseError` (nothing opened yet) when bound to a wildcard
        address with no ``advertise`` and no address other nodes can dial."""
        if not self.settings.advertise:
            bind_host = parse_hostport(self.settings.quic)[0]
            self._advertise_host = advertised_host(bind_host, self.settings.redis)
        self._server = await self._listen()
        try:
            await self._open_listeners()
            http_host, http_port = parse_hostport(self.settings.http)
            self._ops = OpsServer(
                self.metrics,
                http_host,
                http_port,
                ready={
                    "listening": lambda: self._server is not None,
                    "serving": self._serving,
                    **self._ready_checks(),
                },
            )
            await self._ops.__aenter__()
        except BaseException:
            await self.stop()
            raise
        self.metrics.watch_statistics(self.role.value, self.statistics)
        self.metrics.watch_statistics(f"{self.role}_relay", self.relay.statistics)
        self.topology = self._new_topology(
            NodeInfo(
                self.settings.node_id,
                self.role,
                self.settings.region,
                self._advertised(),
                http="{}:{}".format(*self.http_address),
                certificate_hashes=self.certificate.hashes() if self.certificate else (),
            )
        )
        self._task = asyncio.create_task(self._main(), name=f"{self.role}-{self.settings.node_id}")
        self._task.add_done_callback(self._main_done)
        await self._started.wait()
        await self.topology.wait_ready()
        self._log.info(
            f"{self.role}_listening",
            quic="{}:{}".format(*self.quic_address),
            http="{}:{}".format(*self.http_address),
            advertise=self.topology.node.quic,
            **self._listening_fields(),
        )

    async def _listen(self) -> Listener:
        """Open the QUIC port on the configured stack (``quic_stack``): the one place a
        node calls :func:`moqt.aio.listen`. (A POP with ``--workers`` overrides it to
        serve a UDP socket it binds itself, which the workers share.)"""
        host, port = parse_hostport(self.settings.quic)
        if self.settings.quic_stack == "aioquic":
            return await serve(
                host,
                port,
                configuration=self._server_configuration(),
                on_session=self._on_session,
                options=self._session_options(),
                max_connections=self.settings.max_connections,
            )
        return await listen(
            host,
            port,
            certificate=self._certificate,
            private_key=self._private_key,
            on_session=self._on_session,
            options=self._session_options(),
            stack=self.settings.quic_stack,
            max_connections=self.settings.max_connections,
            stream_buffer=self.settings.quic_stream_buffer,
            congestion_control=self.settings.quic_congestion_control,
            send_quantum=self.settings.quic_send_quantum,
            busy_connections=self.settings.quic_busy_connections,
            busy_send_quantum=self.settings.quic_busy_send_quantum,
        )

    def _server_configuration(self) -> QuicConfiguration:
        """The aioquic server configuration; kept, so a renewed certificate is loaded
        into it (new connections get it, established ones keep theirs)."""
        configuration = server_configuration(self._certificate, self._private_key)
        self._quic_configurations.append(configuration)
        return configuration

    def _certificate_changed(self) -> None:
        """The certificate files were renewed: serve and publish the new certificate."""
        assert self.certificate is not None
        if self.settings.quic_stack == "picoquic":  # on picoquic's own thread: awaited
            self._spawn(self._reload_picoquic())
            return
        try:
            self.certificate.load_into(self._quic_configurations)
        except (OSError, ValueError) as exc:  # keep serving the one loaded before
            self._log.warning("certificate_reload_failed", error=str(exc))
            return
        self._publish_certificate_hashes()

    async def _reload_picoquic(self) -> None:
        from moqt.aio import PicoquicServer

        assert self.certificate is not None
        try:
            if isinstance(self._server, PicoquicServer):
                await self.certificate.load_into_picoquic([self._server])
        except (OSError, ValueError, RuntimeError, TimeoutError) as exc:
            self._log.warning("certificate_reload_failed", error=str(exc))
            return
        self._publish_certificate_hashes()

    def _publish_certificate_hashes(self) -> None:
        if self.topology is not None and self.certificate is not None:
            self.topology.set_certificate_hashes(self.certificate.hashes())

    def _session_options(self) -> SessionOptions:
        return SessionOptions(
            max_object_size=self.relay.config.max_object_size,
            implementation=f"clutchcall-{self.role}",
        )

    async def _open_listeners(self) -> None:
        """Ports besides QUIC and HTTP (an origin's RTMP); opened before the ops port."""

    def _ready_checks(self) -> dict[str, ReadyCheck]:
        """``/readyz`` checks of the role, after ``listening`` and ``serving``."""
        return {}

    def _new_topology(self, node: NodeInfo) -> Topology:
        """The registry membership that heartbeats ``node``."""
        return Topology(
            self.bus,
            node,
            heartbeat_interval=self.settings.heartbeat_interval,
            ttl=self.settings.node_ttl,
        )

    def _jobs(self) -> list[Coroutine[Any, Any, None]]:
        """The role's background work, run in the node's TaskGroup until stop."""
        return []

    def _listening_fields(self) -> dict[str, object]:
        """More fields for the ``<role>_listening`` log line."""
        return {}

    def _main_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._log.error(f"{self.role}_failed", error=repr(task.exception()))

    async def _main(self) -> None:
        assert self.topology is not None
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self.topology.run())
            if self.certificate is not None:
                self.certificate.log_start(self._log, self.settings.quic_stack)
                tg.create_task(
                    _guarded(
                        self.certificate.run(self._certificate_changed),
                        self._log,
                        "certificate_renewal_failed",
                    )
                )
            for job in self._jobs():
                tg.create_task(job)
            tg.create_task(self._housekeeping())
            self._started.set()

    def _serving(self) -> bool:
        draining = self._draining or (self.topology is not None and self.topology.node.draining)
        return not draining and self._task is not None and not self._task.done()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the node's TaskGroup; its failure is logged, never fatal."""
        if self._tg is not None:
            try:
                self._tg.create_task(_guarded(coro, self._log, f"{self.role}_task_failed"))
                return
            except RuntimeError:  # the TaskGroup is shutting down
                pass
        coro.close()
        self._log.warning("task_dropped", reason=f"{self.role} not running")

    async def drain(self, grace: float | None = None) -> None:
        """Say ``draining`` in the registry (:meth:`Topology.mark_draining`: at once, then
        a short settle to learn who else drains), GOAWAY to every session, wind the role's
        work down, and wait up to ``grace`` (default ``drain_timeout``) seconds for the
        sessions to leave."""
        self._log.info(f"{self.role}_draining", sessions=len(self._downstream))
        if self.topology is not None:  # first: nothing picks us, we know who else drains
            await self.topology.mark_draining()
        self._goaway_all()
        await self._wind_down()
        await self._wait_gone(self.settings.drain_timeout if grace is None else grace)

    async def stop(self) -> None:
        """Close the sessions left, end the background work, leave the registry and
        close the ports (and the bus, when the node opened it). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._draining = True
        await self._wind_down()
        await self._close_sessions(f"{self.role} shutting down")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self._tg = None
        # After the heartbeat stopped, so it cannot write the node record back.
        if self.topology is not None:
            await self.topology.leave()
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._ops is not None:
            await self._ops.__aexit__(None, None, None)
            self._ops = None
        if self._own_bus:
            await self.bus.close()
        self._log.info(f"{self.role}_stopped")

    async def _wind_down(self) -> None:
        """End the role's own work before its sessions go (drain, and stop again)."""

    # --- downstream sessions ------------------------------------------------------------

    def _on_session(self, connection: MoqtConnection) -> None:
        refusal = self._refusal()
        if refusal is not None or self._tg is None:
            connection.close(SessionCloseCode.INTERNAL_ERROR, refusal or f"{self.role} not running")
            return
        self._attach_session(connection)

    def _refusal(self) -> str | None:
        """Why a new session is closed at once (``None``: take it)."""
        return f"{self.role} not running" if self._tg is None else None

    @abc.abstractmethod
    async def _handle(self, down: D, event: Event) -> bool:
        """Act on one event of ``down``'s session; ``False`` stops reading it."""

    @abc.abstractmethod
    def _session_ended(self, down: D) -> None:
        """Release the role's state of a session that ended (before its relay detach)."""

    # --- housekeeping -------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        ticks = 0
        heap = HeapTrimmer(self.settings.heap_trim_interval)
        while True:
            await asyncio.sleep(_POLL_INTERVAL)
            try:
                self.relay.poll()
            except Exception:
                self._log.exception("relay_poll_failed")
            ticks += 1
            if ticks % _METRICS_EVERY == 0:
                try:
                    self._update_metrics()
                except Exception:
                    self._log.exception("metrics_update_failed")
                if heap.due():
                    await asyncio.to_thread(malloc_trim)

    def _update_metrics(self) -> None:
        stats = self.relay.statistics()
        m = self.metrics
        m.absorb_relay_statistics(stats, self._last_stats)
        self._last_stats = stats
        m.bus_up.set(1 if self.topology is not None and self.topology.bus_up else 0)
        m.queue_depth.labels(self.session_queue).set(
            sum(d.connection.statistics()["queued_events"] for d in self._downstream.values())
        )
        self._update_load()

    @abc.abstractmethod
    def _update_load(self) -> None:
        """The role's session gauges and the load its heartbeat publishes."""

    @abc.abstractmethod
    def statistics(self) -> object:
        """The role's counters (a frozen dataclass), exported as ``clutchcall_<role>_*``."""


async def _guarded(coro: Coroutine[Any, Any, None], log: Any, event: str) -> None:
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception(event)
