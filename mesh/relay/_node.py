"""Run the relay core over ``moqt.aio``: one UDP port for raw QUIC and WebTransport."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from mesh._topology_types import is_relay_link_path
from mesh.session_host import HostedSession, SessionHost
from moqt.aio import Listener, MoqtConnection, SessionOptions, listen
from moqt.events import Event, SetupCompleted

from ._relay import Peer, Relay, RelayConfig

__all__ = ["RelayNode"]

logger = structlog.get_logger("mesh.relay")

_POLL_INTERVAL = 0.25


class RelayNode(SessionHost[HostedSession]):
    """A :class:`Relay` listening on ``host:port`` (see :attr:`address` for port 0); its
    sessions' lifecycle is :class:`mesh.session_host.SessionHost`'s (events handled inline)."""

    _inline = True

    def __init__(
        self,
        config: RelayConfig | None = None,
        *,
        max_request_id: int = 100,
        max_connections: int = 10_000,
        quic_stack: str = "aioquic",
        setup_timeout: float = 10.0,
        congestion_control: str | None = None,
        send_quantum: float | None = None,
        busy_connections: int | None = None,
        busy_send_quantum: float | None = None,
    ) -> None:
        self.relay = Relay(config)
        self._quic_stack = quic_stack
        self._congestion_control = congestion_control  # picoquic's; None: its default (bbr)
        self._send_quantum = send_quantum  # picoquic's BBR burst; None: its default
        self._busy = (busy_connections, busy_send_quantum)  # ... and a busy relay's
        self._options = SessionOptions(
            max_request_id=max_request_id,
            max_object_size=self.relay.config.max_object_size,
            implementation="clutchcall-relay",
        )
        self._server: Listener | None = None
        self._max_connections = max_connections
        self._log = logger
        self._setup_timeout = setup_timeout
        self._init_sessions()
        self._poller: asyncio.TimerHandle | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("the relay is not listening")
        return self._server.address

    @property
    def ready(self) -> bool:
        return self._server is not None

    async def start(self, host: str, port: int, certificate: Path, private_key: Path) -> None:
        self._server = await listen(
            host,
            port,
            certificate=certificate,
            private_key=private_key,
            on_session=self._on_session,
            options=self._options,
            stack=self._quic_stack,
            max_connections=self._max_connections,
            congestion_control=self._congestion_control,
            send_quantum=self._send_quantum,
            busy_connections=self._busy[0],
            busy_send_quantum=self._busy[1],
        )
        logger.info(
            "relay_listening",
            address=f"{self.address[0]}:{self.address[1]}",
            quic_stack=self._quic_stack,
        )
        self._schedule_poll()

    def _schedule_poll(self) -> None:
        self._poller = asyncio.get_running_loop().call_later(_POLL_INTERVAL, self._poll)

    def _poll(self) -> None:
        try:
            self.relay.poll()
        except Exception:
            logger.exception("relay_poll_failed")
        self._schedule_poll()

    def _on_session(self, connection: MoqtConnection) -> None:
        self._attach_session(connection)

    def attach_connection(self, connection: MoqtConnection) -> Peer:
        """Feed ``connection``'s events to the relay: every accepted session, and any
        session this node opened itself (e.g. to a parent relay, then ``relay.add_route``)."""
        return self._attach_session(connection).peer

    def _open_session(self, connection: MoqtConnection, peer: Peer, name: str) -> HostedSession:
        return HostedSession(connection, peer, name)

    def _handle_now(self, session: HostedSession, event: Event) -> None:
        conn = session.connection
        if isinstance(event, SetupCompleted) and is_relay_link_path(
            conn.path if conn.path is not None else event.path
        ):
            # Another relay fans out behind this link: drop at its edge, not here.
            self.relay.mark_relay_link(session.peer)
        self.relay.handle_event(session.peer, event)

    async def drain(self, grace: float = 2.0) -> None:
        """GOAWAY to every session, then close what is left after ``grace`` seconds."""
        self._goaway_all()
        await self._wait_gone(grace)
        await self.stop()

    async def stop(self) -> None:
        await self._close_sessions("relay shutting down")
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        if self._server is not None:
            self._server.close()
            self._server = None
