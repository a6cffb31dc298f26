"""The topology's indexes: bus semantics on both buses, expiries announced once, a late node
coming back, and a rolling upgrade next to nodes of the version before the indexes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from mesh.bus import MemoryBus, RedisBus
from mesh.bus_contract import (
    NODE_PREFIX,
    NODES_INDEX_KEY,
    ROUTES_INDEX_KEY,
    TOPOLOGY_CHANNEL,
    TopologyMessage,
    node_key,
)
from mesh.topology import NodeInfo, NodeRole, Topology
from tests.mesh.conftest import wait_until

BEAT, TTL = 0.2, 0.6


def node(node_id: str, role: NodeRole = NodeRole.POP) -> NodeInfo:
    return NodeInfo(node_id, role, "eu", quic=f"{node_id}.test:4433")


@pytest.fixture(params=["memory", "redis"])
def new_bus(
    request: pytest.FixtureRequest,
) -> Callable[[], MemoryBus | RedisBus]:
    if request.param == "memory":
        shared = MemoryBus()
        return lambda: shared
    make: Callable[[], RedisBus] = request.getfixturevalue("make_bus")
    return make


async def test_index_operations_on_both_buses(new_bus: Callable[[], MemoryBus | RedisBus]) -> None:
    a, b = new_bus(), new_bus()
    assert await a.index_touch(NODES_INDEX_KEY, "n1", 0.3) is True
    assert await a.index_touch(NODES_INDEX_KEY, "n1", 0.3) is False  # already there
    assert await b.index_touch(NODES_INDEX_KEY, "n2", 60) is True
    assert sorted(await b.index_members(NODES_INDEX_KEY)) == ["n1", "n2"]
    assert await a.index_expire(NODES_INDEX_KEY) == []
    # n1's 0.3 s run out: it is no longer a member, but still there to be reaped.
    await wait_until(lambda: _members_are(b, ["n2"]), within=3)
    # Two nodes reap at once: the expired member goes to exactly one of them.
    got = await asyncio.gather(a.index_expire(NODES_INDEX_KEY), b.index_expire(NODES_INDEX_KEY))
    assert sorted(got, key=len) == [[], ["n1"]]
    assert await a.index_touch(NODES_INDEX_KEY, "n1", 60) is True  # back: new again
    await a.index_remove(NODES_INDEX_KEY, "n1")
    assert await b.index_members(NODES_INDEX_KEY) == ["n2"]
    assert await b.index_members(ROUTES_INDEX_KEY) == []


async def _members_are(bus: MemoryBus | RedisBus, expected: list[str]) -> bool:
    return sorted(await bus.index_members(NODES_INDEX_KEY)) == expected


@contextlib.asynccontextmanager
async def running(bus: MemoryBus | RedisBus, info: NodeInfo) -> AsyncIterator[Topology]:
    async with Topology(bus, info, heartbeat_interval=BEAT, ttl=TTL) as t:
        await t.wait_ready()
        yield t


async def test_an_expiry_is_announced_once_and_a_late_node_comes_back(
    new_bus: Callable[[], MemoryBus | RedisBus],
) -> None:
    """A node whose beat stops longer than the TTL is reaped by one of the others, which
    announces node_down once; when it beats again it announces itself."""
    listener = new_bus()
    downs: list[str] = []

    async def count_downs() -> None:
        async with listener.subscribe(TOPOLOGY_CHANNEL) as messages:
            async for m in messages:
                if m.data.get("event") == "node_down":
                    downs.append(m.data["node"])

    counter = asyncio.create_task(count_downs())
    try:
        async with (
            running(new_bus(), node("p1")) as p1,
            running(new_bus(), node("p2")) as p2,
            running(new_bus(), node("p3")),
        ):
            late = Topology(new_bus(), node("late"), heartbeat_interval=BEAT, ttl=TTL)
            task = asyncio.create_task(late.run())
            await wait_until(lambda: "late" in p1.nodes() and "late" in p2.nodes())
            task.cancel()  # its heartbeat stops, no goodbye (as a frozen process)
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await wait_until(lambda: "late" not in p1.nodes() and "late" not in p2.nodes())
            await wait_until(lambda: bool(downs))
            beats = p1.statistics().heartbeats  # every node reaps on every beat:
            await wait_until(lambda: p1.statistics().heartbeats >= beats + 3)
            assert downs == ["late"]  # one reaper, one announcement (three observers)
            # It wakes up: its index entry is gone, so its first beat announces it.
            task = asyncio.create_task(late.run())
            try:
                took = await wait_until(lambda: "late" in p1.nodes() and "late" in p2.nodes())
                assert took < TTL + 1  # a message, not the 30-beat re-read
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        counter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await counter


class LegacyNode:
    """What a node of the version before the indexes does on the bus: its record with a
    TTL every beat, ``node_up`` on its first beat, and it finds the others by scanning."""

    def __init__(self, bus: MemoryBus | RedisBus, info: NodeInfo) -> None:
        self.bus, self.info = bus, info
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        first = True
        while True:
            await self.bus.set(node_key(self.info.node_id), self.info.to_record(), ttl=TTL)
            if first:
                message = TopologyMessage.node_up(self.info).encode()
                await self.bus.publish(TOPOLOGY_CHANNEL, message)
                first = False
            await asyncio.sleep(BEAT)

    def start(self) -> None:
        self._task = asyncio.create_task(self._beat())

    async def kill(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def sees(self) -> set[str]:
        """The old reader: KEYS clutchcall:node:* and a GET each."""
        keys = await self.bus.keys(NODE_PREFIX + "*")
        return {k.removeprefix(NODE_PREFIX) for k in keys if await self.bus.get(k) is not None}


async def test_rolling_upgrade_neither_version_makes_the_other_vanish(
    new_bus: Callable[[], MemoryBus | RedisBus],
) -> None:
    old_before = LegacyNode(new_bus(), node("old-before", NodeRole.ORIGIN))
    old_before.start()
    old_after = LegacyNode(new_bus(), node("old-after"))
    try:
        # A new node starting after an old one finds it by its start-up scan ...
        async with running(new_bus(), node("new")) as new:
            await wait_until(lambda: "old-before" in new.nodes())
            assert not new.nodes()["old-before"].indexed and new.nodes()["new"].indexed
            # ... an old one starting later by its node_up message ...
            old_after.start()
            await wait_until(lambda: "old-after" in new.nodes())
            # ... and the old ones see the new one with their scan.
            assert {"new", "old-before", "old-after"} <= await old_before.sees()
            # Many beats and a full re-read later, nobody has vanished on either side.
            beats = new.statistics().heartbeats
            await wait_until(lambda: new.statistics().heartbeats >= beats + 2 * TTL / BEAT)
            assert {"new", "old-before", "old-after"} <= set(new.nodes())
            assert {"new", "old-before", "old-after"} <= await old_after.sees()
            # An old node dies: the new one notices from its record (no index entry to reap).
            await old_after.kill()
            took = await wait_until(lambda: "old-after" not in new.nodes(), within=5)
            assert took <= TTL + 3 * BEAT + 1  # TTL plus a beat or so (slack for a busy CI)
            assert "old-before" in new.nodes()
    finally:
        await old_before.kill()
        if old_after._task is not None and not old_after._task.done():
            await old_after.kill()


def test_node_record_marks_an_indexed_node() -> None:
    info = NodeInfo("n", NodeRole.POP, "eu", "q:1", indexed=True)
    assert info.to_record()["indexed"] is True
    assert NodeInfo.from_record("n", info.to_record()).indexed
    legacy = NodeInfo("n", NodeRole.POP, "eu", "q:1").to_record()
    assert "indexed" not in legacy and not NodeInfo.from_record("n", legacy).indexed
    assert not NodeInfo.from_record("n", {**legacy, "indexed": "yes"}).indexed


async def test_load_reaches_the_others_by_message_at_most_every_few_beats() -> None:
    bus = MemoryBus()
    ups: list[dict[str, float]] = []

    async def count_ups() -> None:
        async with bus.subscribe(TOPOLOGY_CHANNEL) as messages:
            async for m in messages:
                if m.data.get("event") == "node_up" and m.data.get("node") == "o1":
                    ups.append(m.data["load"])

    counter = asyncio.create_task(count_ups())
    try:
        async with (
            running(bus, node("o1", NodeRole.ORIGIN)) as origin,
            running(bus, node("p1")) as pop,
        ):
            await wait_until(lambda: "o1" in pop.nodes())
            start, sent = origin.statistics().heartbeats, len(ups)
            # A load that changes on every beat (a busy POP's session count) ...
            while origin.statistics().heartbeats < start + 12:
                origin.set_load(sessions=float(origin.statistics().heartbeats))
                await asyncio.sleep(BEAT / 4)
            # ... is published at most every 5 beats (load_publish_every), not on each.
            assert 1 <= len(ups) - sent <= 12 // 5 + 1
            origin.set_load(sessions=1000.0)
            took = await wait_until(lambda: pop.nodes()["o1"].load.get("sessions") == 1000.0)
            assert took <= 6 * BEAT + 1  # within load_publish_every beats (slack for CI)
    finally:
        counter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await counter
