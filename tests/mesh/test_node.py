"""mesh.node.MeshNode: the lifecycle origin and POP share, on real QUIC, HTTP and Redis.

A minimal role (:class:`_Node`) fills the hooks; the tests look from outside: the
ops port, the node record in Redis, what MoQT clients see (GOAWAY, close codes).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

import mesh.node
from mesh.bus import RedisBus
from mesh.metrics import ReadyCheck
from mesh.node import Downstream, MeshNode
from mesh.relay import Peer, Relay, RelayConfig
from mesh.settings import NodeSettings
from mesh.topology import NODE_PREFIX, NodeRole
from moqt.aio import ConnectionClosed, MoqtConnection, connect, write_self_signed
from moqt.errors import SessionCloseCode
from moqt.events import Event, GoawayReceived, SessionClosed, SetupCompleted
from tests.mesh.conftest import wait_until


@dataclass(frozen=True, slots=True)
class _Statistics:
    sessions: int
    ended: int


class _Node(MeshNode[Downstream]):
    """The smallest role: every event goes to the relay core; knobs to make it fail."""

    role: ClassVar[NodeRole] = NodeRole.ORIGIN

    def __init__(
        self,
        settings: NodeSettings,
        *,
        certificate: Path,
        private_key: Path,
        fail_first_setup: bool = False,
        refuse: str | None = None,
        listener_error: Exception | None = None,
    ) -> None:
        super().__init__(settings, certificate=certificate, private_key=private_key)
        self.relay = Relay(RelayConfig())
        self.ended: list[str] = []
        self.job_running = asyncio.Event()
        self._fail_setup = fail_first_setup
        self._refuse = refuse
        self._listener_error = listener_error

    def _advertised(self) -> str:
        return "{}:{}".format(*self.quic_address)

    async def _open_listeners(self) -> None:
        if self._listener_error is not None:
            raise self._listener_error

    def _ready_checks(self) -> dict[str, ReadyCheck]:
        return {"job": self.job_running.is_set}

    def _jobs(self) -> list[Coroutine[object, object, None]]:
        return [self._job()]

    async def _job(self) -> None:
        self.job_running.set()
        await asyncio.Event().wait()  # until the node stops

    def _refusal(self) -> str | None:
        return self._refuse or super()._refusal()

    def _open_session(self, connection: MoqtConnection, peer: Peer, name: str) -> Downstream:
        return Downstream(connection, peer, name)

    async def _handle(self, down: Downstream, event: Event) -> bool:
        if isinstance(event, SessionClosed):
            return False
        if isinstance(event, SetupCompleted) and self._fail_setup:
            self._fail_setup = False
            raise RuntimeError("a role bug")
        self.relay.handle_event(down.peer, event)
        return True

    def _session_ended(self, down: Downstream) -> None:
        self.ended.append(down.name)

    def _update_load(self) -> None:
        self.metrics.sessions.labels("viewer").set(len(self._downstream))

    def statistics(self) -> _Statistics:
        return _Statistics(sessions=len(self._downstream), ended=len(self.ended))


@pytest.fixture
def certs(tmp_path: Path) -> tuple[Path, Path]:
    return write_self_signed(tmp_path)


def _settings(redis_url: str, **overrides: object) -> NodeSettings:
    values: dict[str, object] = {
        "node_id": "n1",
        "region": "r1",
        "quic": "127.0.0.1:0",
        "http": "127.0.0.1:0",
        "redis": redis_url,
        "heartbeat_interval": 0.2,
        "node_ttl": 1.0,
        "drain_timeout": 5.0,
    }
    values.update(overrides)
    return NodeSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def node(redis_url: str, certs: tuple[Path, Path]) -> AsyncIterator[_Node]:
    node = _Node(_settings(redis_url), certificate=certs[0], private_key=certs[1])
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


@pytest.fixture
async def registry(redis_url: str) -> AsyncIterator[RedisBus]:
    bus = RedisBus(redis_url, retry_interval=0.1, timeout=0.5)
    yield bus
    await bus.close()


async def http_get(node: _Node, path: str) -> tuple[int, str]:
    """Status and body of ``GET path`` on the ops port (errors included)."""
    host, port = node.http_address

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no *_proxy

    def get() -> tuple[int, str]:
        try:
            with direct.open(f"http://{host}:{port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    return await asyncio.to_thread(get)


def url(node: _Node) -> str:
    return f"moqt://127.0.0.1:{node.quic_address[1]}"


def test_exports_are_pinned() -> None:
    assert set(mesh.node.__all__) == {"Downstream", "MeshNode"}


def test_a_role_must_fill_the_required_hooks(certs: tuple[Path, Path]) -> None:
    class Incomplete(MeshNode[Downstream]):
        role: ClassVar[NodeRole] = NodeRole.POP

    with pytest.raises(TypeError, match="abstract"):
        Incomplete(NodeSettings(), certificate=certs[0], private_key=certs[1])  # type: ignore[abstract]


async def test_start_serves_ops_and_registers_stop_withdraws(
    node: _Node, registry: RedisBus
) -> None:
    assert node.quic_address[1] > 0 and node.http_address[1] > 0
    assert await http_get(node, "/healthz") == (200, "ok\n")
    assert await http_get(node, "/readyz") == (200, "ready\n")
    status, metrics = await http_get(node, "/metrics")
    assert status == 200
    assert "clutchcall_origin_sessions 0.0" in metrics  # the role's statistics()
    assert "clutchcall_origin_relay_sessions 0.0" in metrics  # its relay core's
    record = await registry.get(NODE_PREFIX + "n1")
    assert record is not None
    assert record["role"] == "origin" and record["region"] == "r1"
    assert record["quic"] == f"127.0.0.1:{node.quic_address[1]}"
    assert record["http"] == f"127.0.0.1:{node.http_address[1]}"
    quic_port = node.quic_address[1]

    await node.stop()
    assert await registry.get(NODE_PREFIX + "n1") is None
    with pytest.raises(RuntimeError, match="not listening"):
        _ = node.quic_address
    await node.stop()  # idempotent
    await asyncio.sleep(0.5)  # more than a heartbeat: the record stays withdrawn
    assert await registry.get(NODE_PREFIX + "n1") is None
    assert _can_bind(quic_port)  # the QUIC port is closed


async def test_sessions_are_attached_and_drain_sends_goaway(node: _Node) -> None:
    async with connect(url(node), verify=False) as client:
        await wait_until(lambda: node.statistics().sessions == 1)
        assert node.relay.statistics()["sessions"] == 1
        drain = asyncio.create_task(node.drain())
        async with asyncio.timeout(5):
            while not isinstance(await client.wait_event(), GoawayReceived):
                pass
        assert node.draining
        assert await http_get(node, "/readyz") == (503, "not ready: serving\n")
        assert (await http_get(node, "/healthz"))[0] == 200
        began = time.monotonic()
    await asyncio.wait_for(drain, 5)
    assert time.monotonic() - began < 2.0  # returned when the session left, not at the timeout
    assert node.ended == ["n1/s1"]
    assert node.relay.statistics()["sessions"] == 0


async def test_drain_gives_up_after_grace_and_stop_closes_the_rest(node: _Node) -> None:
    async with connect(url(node), verify=False) as client:
        await wait_until(lambda: node.statistics().sessions == 1)
        began = time.monotonic()
        await node.drain(grace=0.3)  # the client ignores the GOAWAY
        assert 0.3 <= time.monotonic() - began < 2.0
        assert node.statistics().sessions == 1
        await node.stop()
        closed = await asyncio.wait_for(client.wait_closed(), 5)
        assert closed.code == SessionCloseCode.NO_ERROR
        assert closed.reason == "origin shutting down"
    assert node.ended == ["n1/s1"]


async def test_a_failing_session_is_closed_alone(redis_url: str, certs: tuple[Path, Path]) -> None:
    node = _Node(
        _settings(redis_url), certificate=certs[0], private_key=certs[1], fail_first_setup=True
    )
    await node.start()
    try:
        async with connect(url(node), verify=False) as first:
            closed = await asyncio.wait_for(first.wait_closed(), 5)
            assert closed.code == SessionCloseCode.INTERNAL_ERROR
            assert closed.reason == "internal error"
        await wait_until(lambda: node.ended == ["n1/s1"])
        async with connect(url(node), verify=False):
            await wait_until(lambda: node.statistics().sessions == 1)
            assert await http_get(node, "/readyz") == (200, "ready\n")
    finally:
        await node.stop()


@pytest.mark.parametrize("quic_stack", ["aioquic", "picoquic"])
async def test_a_refused_session_is_closed_with_the_reason(
    redis_url: str, certs: tuple[Path, Path], caplog: pytest.LogCaptureFixture, quic_stack: str
) -> None:
    settings = _settings(redis_url, quic_stack=quic_stack)
    node = _Node(settings, certificate=certs[0], private_key=certs[1], refuse="full")
    await node.start()
    try:
        caplog.set_level(logging.INFO, logger="moqt.aio")  # moqt logs through stdlib logging
        with pytest.raises((ConnectionError, ConnectionClosed)) as refused:
            async with connect(url(node), verify=False, setup_timeout=5):
                pass
        if quic_stack == "picoquic":  # it sends the reason in CONNECTION_CLOSE
            assert isinstance(refused.value, ConnectionClosed), refused.value
            assert refused.value.reason == "full"
        # aioquic closes before the handshake ends: the client learns no reason; the log
        # says it on both.
        closed = [
            r.__dict__["fields"]
            for r in caplog.records
            if r.__dict__.get("event") == "session_closed" and not r.__dict__["fields"]["by_peer"]
        ]
        assert [(e["code"], e["reason"]) for e in closed] == [(1, "full")]
        assert node.statistics().sessions == 0 and node.relay.statistics()["sessions"] == 0
    finally:
        await node.stop()


async def test_a_failed_start_closes_what_it_opened(
    redis_url: str, certs: tuple[Path, Path]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        quic_port = probe.getsockname()[1]
    node = _Node(
        _settings(redis_url, quic=f"127.0.0.1:{quic_port}"),
        certificate=certs[0],
        private_key=certs[1],
        listener_error=OSError("rtmp port taken"),
    )
    with pytest.raises(OSError, match="rtmp port taken"):
        await node.start()
    with pytest.raises(RuntimeError, match="not listening"):
        _ = node.quic_address
    assert node.topology is None
    await wait_until(lambda: _can_bind(quic_port), within=2)  # the QUIC port was closed


def _can_bind(udp_port: int) -> bool:
    """The transport closes its socket on the next loop turns, not at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", udp_port))
        except OSError:
            return False
    return True


async def test_spawned_work_fails_alone_and_is_dropped_once_stopped(node: _Node) -> None:
    async def broken() -> None:
        raise RuntimeError("a background bug")

    node._spawn(broken())
    await asyncio.sleep(0.1)
    assert await http_get(node, "/readyz") == (200, "ready\n")  # the node still serves
    await node.stop()
    late = broken()
    node._spawn(late)
    assert inspect.getcoroutinestate(late) == inspect.CORO_CLOSED  # closed, never awaited
