"""mesh.session_host: the one lifecycle of served sessions (RelayNode's and MeshNode's)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from pathlib import Path

import structlog

from mesh.relay import Peer, Relay, RelayConfig
from mesh.relay._node import RelayNode
from mesh.session_host import HostedSession, SessionHost
from moqt import SessionCloseCode
from moqt.aio import MoqtConnection, connect, serve, server_configuration, write_self_signed
from moqt.events import Event, GoawayReceived, SessionClosed, SetupCompleted
from tests.mesh.conftest import wait_until
from tests.mesh.test_relay_node import raw_session


async def test_a_relay_node_closes_a_session_that_never_sets_up(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path)
    node = RelayNode(setup_timeout=0.5)
    await node.start("127.0.0.1", 0, cert, key)
    try:
        closed = await raw_session(node.address[1], b"")  # QUIC up, no CLIENT_SETUP
        assert closed.error_code == SessionCloseCode.CONTROL_MESSAGE_TIMEOUT
        await wait_until(lambda: node.relay.statistics()["sessions"] == 0)
        assert node.relay.statistics()["sessions"] == 0
    finally:
        await node.stop()


async def test_a_session_set_up_during_the_drain_gets_goaway_at_once(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path)
    node = RelayNode()
    await node.start("127.0.0.1", 0, cert, key)
    url = f"moqt://127.0.0.1:{node.address[1]}"
    async with connect(url, verify=False):  # stays: the drain waits for it
        await wait_until(lambda: node.relay.statistics()["sessions"] == 1)
        drain = asyncio.create_task(node.drain(grace=5.0))
        await wait_until(lambda: node.draining)
        async with connect(url, verify=False) as late:
            async with asyncio.timeout(5):
                while not isinstance(await late.wait_event(), GoawayReceived):
                    pass
    await asyncio.wait_for(drain, 5)
    assert node.relay.statistics()["sessions"] == 0


class _Stuck(SessionHost[HostedSession]):
    """A host whose handler never returns from SETUP (e.g. admission that never answers)."""

    def __init__(self) -> None:
        self.relay = Relay(RelayConfig())
        self._log = structlog.get_logger()
        self._session_prefix = "n/"
        self._init_sessions()
        self.ended: list[str] = []
        self.waiting = asyncio.Event()

    def _open_session(self, connection: MoqtConnection, peer: Peer, name: str) -> HostedSession:
        return HostedSession(connection, peer, name)

    async def _handle(self, down: HostedSession, event: Event) -> bool:
        self.relay.handle_event(down.peer, event)
        if isinstance(event, SetupCompleted):
            self.waiting.set()
            await asyncio.Event().wait()
        return True

    def _session_ended(self, down: HostedSession) -> None:
        self.ended.append(down.name)


async def test_close_ends_a_session_whose_handler_still_awaits(tmp_path: Path) -> None:
    """No reader task is left behind, and each session ends once (hook, then detach)."""
    before = asyncio.all_tasks()
    cert, key = write_self_signed(tmp_path)
    host = _Stuck()
    server = await serve(
        "127.0.0.1",
        0,
        configuration=server_configuration(cert, key),
        on_session=host._attach_session,  # type: ignore[arg-type]
    )
    try:
        async with connect(f"moqt://127.0.0.1:{server.address[1]}", verify=False) as client:
            await asyncio.wait_for(host.waiting.wait(), 5)
            assert host.relay.statistics()["sessions"] == 1
            await host._close_sessions("bye")
            closed = await client.wait_closed(grace=5)
            assert isinstance(closed, SessionClosed)
            assert (closed.code, closed.reason) == (SessionCloseCode.NO_ERROR, "bye")
    finally:
        server.close()
    assert host.ended == ["n/s1"]
    assert host.relay.statistics()["sessions"] == 0
    await asyncio.sleep(0)  # the server's own callbacks
    assert {t for t in asyncio.all_tasks() - before if not t.done()} == set()


class _Watched(RelayNode):
    """A relay node that keeps a weak reference to each session it accepted."""

    def __init__(self) -> None:
        super().__init__(quic_stack="picoquic")
        self.sessions: list[weakref.ref[MoqtConnection]] = []
        self.freed = asyncio.Event()

    def _on_session(self, connection: MoqtConnection) -> None:
        self.sessions.append(weakref.ref(connection, lambda _ref: self.freed.set()))
        super()._on_session(connection)


async def test_ended_sessions_are_freed_without_the_cycle_collector(tmp_path: Path) -> None:
    """A viewer that came, asked for a track and left is gone with its last reference:
    the relay's peer, its scheduler and the connection hold no cycle that would wait for
    one of CPython's full collections (a busy relay runs them seldom; in the soak the
    ended sessions piled up by the hundred between two, issue 13)."""
    cert, key = write_self_signed(tmp_path)
    node = _Watched()
    await node.start("127.0.0.1", 0, cert, key)
    gc.collect()
    gc.disable()
    try:
        url = f"moqt://127.0.0.1:{node.address[1]}"
        for _ in range(3):
            async with connect(url, verify=False, stack="picoquic") as viewer:
                request = viewer.session.subscribe((b"nobody",), b"video")
                await asyncio.wait_for(viewer.wait_response(request), 5)
        await wait_until(lambda: node.relay.statistics()["sessions"] == 0)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while any(ref() is not None for ref in node.sessions):
                    await node.freed.wait()
                    node.freed.clear()
        assert len(node.sessions) == 3
        assert [ref() for ref in node.sessions] == [None, None, None]
    finally:
        gc.enable()
        await node.stop()
