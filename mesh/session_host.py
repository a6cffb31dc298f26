"""The life of the MoQT sessions a node serves, written once.

:class:`SessionHost` is what :class:`mesh.node.MeshNode` (origin, POP) and
:class:`mesh.relay.RelayNode` (``clutchcall relay``, the test labs) share of a session:

* attach: the session becomes a peer of the relay core (its send backlog, and a
  wake-up when the connection may take more), gets a name and the role's record;
* the SETUP deadline: a session with no SETUP within ``setup_timeout`` is closed
  (CONTROL_MESSAGE_TIMEOUT), however often it pings;
* its events in order: read by a task of its own when the role's ``handle`` awaits
  (admission), or handed over inside the transport's callback (``handle_now``, the
  plain relay); a failure closes that session alone;
* its end, once, whatever happened: the role's ``ended`` hook, then the relay detach;
* GOAWAY (after SETUP only, with the new session URI the role names, if any): to every
  session at :meth:`goaway_all`, and to one completing SETUP afterwards; :meth:`wait_gone`
  gives them a grace to leave and :meth:`close` closes the rest;
* its tasks: every reader task is the host's; :meth:`close` returns once all ended.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

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


class SessionHost[S: HostedSession]:
    """The sessions of one node (see the module docstring); give ``handle`` (async, one
    reader task a session) or ``handle_now`` (sync, in the transport's callback)."""

    def __init__(
        self,
        relay: Relay,
        *,
        log: Any,
        open: Callable[[MoqtConnection, Peer, str], S],
        handle: Callable[[S, Event], Awaitable[bool]] | None = None,
        handle_now: Callable[[S, Event], None] | None = None,
        ended: Callable[[S], None] = lambda _session: None,
        setup_timeout: float | None = None,
        goaway_timeout: float | None = None,
        goaway_uri: Callable[[S], str] = lambda _session: "",
        prefix: str = "",
    ) -> None:
        if (handle is None) == (handle_now is None):
            raise TypeError("give exactly one of handle and handle_now")
        self.relay = relay
        self._log = log
        self._open = open
        self._handle = handle
        self._handle_now = handle_now
        self._ended = ended
        self._setup_timeout = setup_timeout
        self._goaway_timeout = goaway_timeout
        self._goaway_uri = goaway_uri
        self._prefix = prefix
        self._ids = itertools.count(1)
        #: The sessions attached and not ended yet, by connection.
        self.sessions: dict[MoqtConnection, S] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._deadlines: dict[MoqtConnection, asyncio.TimerHandle] = {}
        #: Set by :meth:`goaway_all` (and :meth:`close`): SETUP is answered with GOAWAY.
        self.draining = False

    def __len__(self) -> int:
        return len(self.sessions)

    def values(self) -> list[S]:
        return list(self.sessions.values())

    # --- one session --------------------------------------------------------------------

    def attach(self, connection: MoqtConnection) -> S:
        """Take ``connection``: an accepted session, or one this node opened itself."""
        name = f"{self._prefix}s{next(self._ids)}"
        relay = self.relay
        peer = relay.attach(connection.session, name, send_backlog=connection.send_backlog)
        # ACKs arrived: the connection may take what the peer's relay scheduler holds.
        connection.set_writable_handler(lambda: relay.pump(peer), min_backlog=relay.wake_backlog)
        session = self._open(connection, peer, name)
        self.sessions[connection] = session
        if self._setup_timeout is not None:
            self._deadlines[connection] = asyncio.get_running_loop().call_later(
                self._setup_timeout, self._setup_deadline, session
            )
        self._log.info(
            "session_opened",
            session=name,
            transport=connection.transport_name,
            remote=":".join(map(str, connection.remote_address or ())),
        )
        if self._handle_now is not None:
            handle_now = self._handle_now

            def on_event(conn: MoqtConnection, event: Event) -> None:
                try:
                    handle_now(session, event)
                    self._after(session, event)
                finally:
                    if conn.is_closed or peer.closed:
                        self._end(session)

            connection.set_event_handler(on_event)
        else:
            task = asyncio.get_running_loop().create_task(self._read(session), name=name)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return session

    async def _read(self, session: S) -> None:
        """Read one session's events in order until it ends; a failure closes only it."""
        assert self._handle is not None
        conn = session.connection
        with bind_context(session=session.name):
            try:
                async for event in conn.events():
                    if not await self._handle(session, event):
                        break
                    self._after(session, event)
            except Exception:
                self._log.exception("session_failed", session=session.name)
                conn.close(SessionCloseCode.INTERNAL_ERROR, "internal error")
            finally:
                self._end(session)

    def _after(self, session: S, event: Event) -> None:
        if self.draining and isinstance(event, SetupCompleted):
            self.goaway(session)  # set up while the node drains: move on at once

    def _end(self, session: S) -> None:
        """Once per session: the role's hook, then the relay detach."""
        conn = session.connection
        if self.sessions.pop(conn, None) is None:
            return
        deadline = self._deadlines.pop(conn, None)
        if deadline is not None:
            deadline.cancel()
        try:
            self._ended(session)
            self.relay.detach(session.peer)
        except Exception:
            self._log.exception("session_cleanup_failed", session=session.name)

    def _setup_deadline(self, session: S) -> None:
        """No SETUP in time: a session that only pings is not kept."""
        conn = session.connection
        self._deadlines.pop(conn, None)
        if conn.is_closed or conn.session.setup_complete:
            return
        self._log.info("setup_timeout", session=session.name, after=self._setup_timeout)
        conn.close(SessionCloseCode.CONTROL_MESSAGE_TIMEOUT, "no SETUP in time")

    def goaway(self, session: S) -> None:
        """Ask the peer to move (to the role's new session URI, if any); after SETUP only."""
        conn = session.connection
        if conn.is_closed or not conn.session.setup_complete or conn.session.goaway_sent:
            return
        try:
            conn.session.goaway(self._goaway_uri(session), timeout=self._goaway_timeout)
        except LocalError as exc:
            self._log.debug("goaway_failed", error=str(exc))

    # --- all sessions -------------------------------------------------------------------

    def goaway_all(self) -> None:
        """The drain begins: GOAWAY to every session, and to each that sets up from now."""
        self.draining = True
        for session in self.values():
            self.goaway(session)

    async def wait_gone(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for every session to end."""
        closing = [asyncio.ensure_future(c.wait_closed()) for c in list(self.sessions)]
        if closing:
            await asyncio.wait(closing, timeout=grace)
            for future in closing:
                future.cancel()
            await asyncio.gather(*closing, return_exceptions=True)

    async def close(self, reason: str, grace: float = 1.0) -> None:
        """Close every session (NO_ERROR, ``reason``), tear down any still open after
        ``grace`` seconds, and end them all: no reader task is left when it returns."""
        self.draining = True
        connections = list(self.sessions)
        for conn in connections:
            conn.close(SessionCloseCode.NO_ERROR, reason)
        if connections:
            await asyncio.gather(
                *(c.wait_closed(grace=grace) for c in connections), return_exceptions=True
            )
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for session in self.values():  # torn down without a last event
            self._end(session)
