"""Run the relay core over ``moqt.aio``: one UDP port for raw QUIC and WebTransport."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import structlog

from mesh._topology_types import is_relay_link_path
from moqt.aio import Listener, MoqtConnection, SessionOptions, listen
from moqt.errors import SessionCloseCode
from moqt.events import Event, SetupCompleted

from ._relay import Peer, Relay, RelayConfig

__all__ = ["RelayNode"]

logger = structlog.get_logger("mesh.relay")

_POLL_INTERVAL = 0.25


class RelayNode:
    """A :class:`Relay` listening on ``host:port`` (see :attr:`address` for port 0)."""

    def __init__(
        self,
        config: RelayConfig | None = None,
        *,
        max_request_id: int = 100,
        max_connections: int = 10_000,
        quic_stack: str = "aioquic",
    ) -> None:
        self.relay = Relay(config)
        self._quic_stack = quic_stack
        self._options = SessionOptions(
            max_request_id=max_request_id,
            max_object_size=self.relay.config.max_object_size,
            implementation="clutchcall-relay",
        )
        self._server: Listener | None = None
        self._max_connections = max_connections
        self._ids = itertools.count(1)
        self._connections: dict[MoqtConnection, Peer] = {}
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
        self.attach_connection(connection)

    def attach_connection(self, connection: MoqtConnection) -> Peer:
        """Feed ``connection``'s events to the relay: every accepted session, and any
        session this node opened itself (e.g. to a parent relay, then ``relay.add_route``)."""
        name = f"s{next(self._ids)}"
        peer = self.relay.attach(connection.session, name, send_backlog=connection.send_backlog)
        self._connections[connection] = peer
        logger.info(
            "session_opened",
            session=name,
            transport=connection.transport_name,
            remote=connection.remote_address,
        )

        def handle(conn: MoqtConnection, event: Event) -> None:
            try:
                if isinstance(event, SetupCompleted) and is_relay_link_path(
                    conn.path if conn.path is not None else event.path
                ):
                    # Another relay fans out behind this link: drop at its edge, not here.
                    self.relay.mark_relay_link(peer)
                self.relay.handle_event(peer, event)
            finally:
                if conn.is_closed or peer.closed:
                    self._connections.pop(conn, None)
                    self.relay.detach(peer)

        connection.set_event_handler(handle)
        # ACKs arrived: the connection may take what the peer's scheduler holds.
        connection.set_writable_handler(
            lambda: self.relay.pump(peer), min_backlog=self.relay.wake_backlog
        )
        return peer

    async def drain(self, grace: float = 2.0) -> None:
        """GOAWAY to every session, then close what is left after ``grace`` seconds."""
        for connection in list(self._connections):
            if not connection.is_closed:
                try:
                    connection.session.goaway()
                except Exception as exc:  # a session that cannot send GOAWAY is closed below
                    logger.debug("goaway_failed", error=str(exc))
        closing = [asyncio.ensure_future(c.wait_closed()) for c in list(self._connections)]
        if closing:
            _, pending = await asyncio.wait(closing, timeout=grace)
            for future in pending:
                future.cancel()
            await asyncio.gather(*closing, return_exceptions=True)
        await self.stop()

    async def stop(self) -> None:
        for connection in list(self._connections):
            connection.close(SessionCloseCode.NO_ERROR, "relay shutting down")
        waits = [c.wait_closed(grace=1.0) for c in list(self._connections)]
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)
        for peer in list(self._connections.values()):
            self.relay.detach(peer)
        self._connections.clear()
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        if self._server is not None:
            self._server.close()
            self._server = None
