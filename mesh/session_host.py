"""The life of a served MoQT session, written once: attach to the relay core, the SETUP
deadline, events in order, the end (role hook, relay detach), GOAWAY, drain, close, and the
reader tasks. :class:`mesh.node.MeshNode` (origin, POP) and :class:`mesh.relay.RelayNode`
build on it; docs/ARCHITECTURE.md "Node lifecycle" tells the whole story.
"""

from __future__ import annotations

import abc
import asyncio
import itertools
from dataclasses import dataclass
from typing import Any, ClassVar

from mesh.logging import bind_context
from mesh.relay import Peer, Relay
from moqt.aio import MoqtConnection
from moqt.errors import LocalError, SessionCloseCode
from moqt.events import Event, SetupCompleted

__all__ = ["HostedSession", "SessionHost"]


@dataclass(slots=True, eq=False)
class HostedSession:
    """One attached session: its connection, its peer in the relay core, its log name."""

    connection: MoqtConnection
    peer: Peer
    name: str


class SessionHost[S: HostedSession](abc.ABC):
    """A node's sessions. The node sets ``relay`` and ``_log``, calls :meth:`_init_sessions`,
    implements :meth:`_open_session` and :meth:`_handle` (one reader task a session, it may
    await) or, with ``_inline``, :meth:`_handle_now` (in the transport's callback)."""

    relay: Relay
    _log: Any
    _inline: ClassVar[bool] = False
    _setup_timeout: float | None = None
    _goaway_timeout: float | None = None
    _session_prefix: str = ""

    def _init_sessions(self) -> None:
        #: The sessions attached and not ended yet, by connection.
        self._downstream: dict[MoqtConnection, S] = {}
        self._ids = itertools.count(1)
        self._session_tasks: set[asyncio.Task[None]] = set()
        self._setup_deadlines: dict[MoqtConnection, asyncio.TimerHandle] = {}
        self._draining = False  # from the drain on, SETUP is answered with GOAWAY

    @property
    def draining(self) -> bool:
        return self._draining

    def sessions(self) -> list[S]:
        """The sessions attached now (a snapshot: closing one while iterating is fine)."""
        return list(self._downstream.values())

    @abc.abstractmethod
    def _open_session(self, connection: MoqtConnection, peer: Peer, name: str) -> S:
        """The role's record of a session just attached to the relay."""

    async def _handle(self, down: S, event: Event) -> bool:
        """Act on one event of ``down``'s session; ``False`` stops reading it."""
        raise NotImplementedError

    def _handle_now(self, down: S, event: Event) -> None:
        """Act on one event, inside the transport's callback (``_inline``)."""
        raise NotImplementedError

    def _session_ended(self, down: S) -> None:  # noqa: B027 (optional hook)
        """Release the role's state of a session that ended (before its relay detach)."""

    def _goaway_uri(self, down: S) -> str:
        """The new session URI a draining node's GOAWAY names (``""``: none)."""
        return ""

    def _attach_session(self, connection: MoqtConnection) -> S:
        """Take ``connection``: an accepted session, or one this node opened itself."""
        name = f"{self._session_prefix}s{next(self._ids)}"
        relay = self.relay
        peer = relay.attach(connection.session, name, send_backlog=connection.send_backlog)
        # ACKs arrived: the connection may take what the peer's relay scheduler holds.
        connection.set_writable_handler(lambda: relay.pump(peer), min_backlog=relay.wake_backlog)
        down = self._open_session(connection, peer, name)
        self._downstream[connection] = down
        if self._setup_timeout is not None:
            self._setup_deadlines[connection] = asyncio.get_running_loop().call_later(
                self._setup_timeout, self._setup_deadline, down
            )
        self._log.info(
            "session_opened",
            session=name,
            transport=connection.transport_name,
            remote=":".join(map(str, connection.remote_address or ())),
        )
        if self._inline:

            def on_event(conn: MoqtConnection, event: Event) -> None:
                try:
                    self._handle_now(down, event)
                    self._after(down, event)
                finally:
                    if conn.is_closed or peer.closed:
                        self._end(down)

            connection.set_event_handler(on_event)
        else:
            task = asyncio.get_running_loop().create_task(self._read(down), name=name)
            self._session_tasks.add(task)
            task.add_done_callback(self._session_tasks.discard)
        return down

    async def _read(self, down: S) -> None:  # a failure closes this session alone
        conn = down.connection
        with bind_context(session=down.name):
            try:
                async for event in conn.events():
                    if not await self._handle(down, event):
                        break
                    self._after(down, event)
            except Exception:
                self._log.exception("session_failed", session=down.name)
                conn.close(SessionCloseCode.INTERNAL_ERROR, "internal error")
            finally:
                self._end(down)

    def _after(self, down: S, event: Event) -> None:
        if self._draining and isinstance(event, SetupCompleted):
            self._goaway(down)  # set up while the node drains: move on at once

    def _end(self, down: S) -> None:  # once a session: the role's hook, the relay detach
        conn = down.connection
        if self._downstream.pop(conn, None) is None:
            return
        deadline = self._setup_deadlines.pop(conn, None)
        if deadline is not None:
            deadline.cancel()
        try:
            self._session_ended(down)
            self.relay.detach(down.peer)
        except Exception:
            self._log.exception("session_cleanup_failed", session=down.name)

    def _setup_deadline(self, down: S) -> None:  # a session that only pings is not kept
        conn = down.connection
        self._setup_deadlines.pop(conn, None)
        if conn.is_closed or conn.session.setup_complete:
            return
        self._log.info("setup_timeout", session=down.name, after=self._setup_timeout)
        conn.close(SessionCloseCode.CONTROL_MESSAGE_TIMEOUT, "no SETUP in time")

    def _goaway(self, down: S) -> None:
        """Ask the peer to move (to :meth:`_goaway_uri`, if any); after SETUP only."""
        conn = down.connection
        if conn.is_closed or not conn.session.setup_complete or conn.session.goaway_sent:
            return
        try:
            conn.session.goaway(self._goaway_uri(down), timeout=self._goaway_timeout)
        except LocalError as exc:
            self._log.debug("goaway_failed", error=str(exc))

    def _goaway_all(self) -> None:
        """The drain begins: GOAWAY to every session, and to each that sets up from now."""
        self._draining = True
        for down in list(self._downstream.values()):
            self._goaway(down)

    async def _wait_gone(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for every session to end."""
        closing = [asyncio.ensure_future(c.wait_closed()) for c in list(self._downstream)]
        if closing:
            await asyncio.wait(closing, timeout=grace)
            for future in closing:
                future.cancel()
            await asyncio.gather(*closing, return_exceptions=True)

    async def _close_sessions(self, reason: str, grace: float = 1.0) -> None:
        """Close every session (torn down after ``grace`` s); no reader task is left."""
        self._draining = True
        connections = list(self._downstream)
        for conn in connections:
            conn.close(SessionCloseCode.NO_ERROR, reason)
        if connections:
            await asyncio.gather(
                *(c.wait_closed(grace=grace) for c in connections), return_exceptions=True
            )
        for task in list(self._session_tasks):
            task.cancel()
        if self._session_tasks:
            await asyncio.gather(*self._session_tasks, return_exceptions=True)
        for down in list(self._downstream.values()):  # torn down without a last event
            self._end(down)
