"""Topology against a real redis-server: registry, routing, region preference, parents, outages."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
import redis.asyncio as aioredis

from mesh.bus import MemoryBus, RedisBus
from mesh.bus_contract import ROUTES_INDEX_KEY
from mesh.topology import (
    NODE_PREFIX,
    ROUTE_PREFIX,
    NodeInfo,
    NodeRole,
    NoRoute,
    Route,
    RouteLoop,
    Topology,
    TopologyEvent,
    format_hop_path,
    hop_path_from,
    parse_hop_path,
    with_hop_path,
)
from tests.mesh.conftest import wait_until

NS = "stream/org_1/lv_abc"
BEAT, TTL = 0.2, 0.6


def node(node_id: str, role: NodeRole, region: str) -> NodeInfo:
    return NodeInfo(node_id, role, region, quic=f"{node_id}.test:4433", http=f"{node_id}.test:8080")


@contextlib.asynccontextmanager
async def running(
    bus: RedisBus | MemoryBus,
    info: NodeInfo,
    parent_regions: Sequence[str] = (),
    max_hops: int = 3,
) -> AsyncIterator[Topology]:
    async with Topology(
        bus,
        info,
        parent_regions=parent_regions,
        max_hops=max_hops,
        heartbeat_interval=BEAT,
        ttl=TTL,
    ) as t:
        await t.wait_ready()
        yield t


def test_records_round_trip_and_reject_malformed() -> None:
    info = NodeInfo(
        "o1", NodeRole.ORIGIN, "eu", "h:1", "h:2", 5.0, hosts=frozenset({NS}), load={"s": 2.0}
    )
    again = NodeInfo.from_record("o1", info.to_record())
    assert (again.role, again.region, again.quic, again.hosts, dict(again.load)) == (
        NodeRole.ORIGIN,
        "eu",
        "h:1",
        frozenset({NS}),
        {"s": 2.0},
    )
    route = Route(NS, "o1", "eu", "h:1", 7.0)
    assert Route.from_record(NS, route.to_record()) == route
    for bad in ({}, {"role": "king", "region": "eu", "quic": "x"}, {"role": "pop", "region": 3}):
        with pytest.raises(ValueError):
            NodeInfo.from_record("n", bad)
    with pytest.raises(ValueError):
        Route.from_record(NS, {"origin": "", "region": "eu", "quic": "q"})


def test_hop_path_format_and_parse() -> None:
    assert parse_hop_path(format_hop_path(["a", "b"])) == ("a", "b")
    assert parse_hop_path(None) == () and parse_hop_path(b"") == ()
    for bad in ("a,,b", ",".join(["x"] * 17), b"\xff"):
        with pytest.raises(ValueError):
            parse_hop_path(bad)
    with pytest.raises(ValueError):
        format_hop_path(["a,b"])


def test_hop_path_on_the_connection_path() -> None:
    path = with_hop_path("/moq?token=a.b.c", ["edge-1", "reg-2"])
    assert path == "/moq?token=a.b.c&hops=edge-1,reg-2"
    assert hop_path_from(path) == ("edge-1", "reg-2")
    assert hop_path_from(with_hop_path(path, ["x"]).encode()) == ("x",)  # replaced, not added
    assert with_hop_path("/moq?hops=old", []) == "/moq"
    assert hop_path_from("/moq") == () and hop_path_from(None) == ()
    assert hop_path_from("https://pop.example:443/moq?hops=a") == ("a",)
    for bad in ("/moq?hops=a&hops=b", "/moq?hops=a,,b", b"/moq?hops=\xff"):
        with pytest.raises(ValueError):
            hop_path_from(bad)


async def test_route_announce_reaches_pop_and_withdraw_removes_it(
    make_bus: Callable[[], RedisBus],
) -> None:
    seen: list[TopologyEvent] = []
    async with (
        running(make_bus(), node("o1", NodeRole.ORIGIN, "eu")) as origin,
        running(make_bus(), node("p1", NodeRole.POP, "eu")) as pop,
    ):
        pop.add_listener(seen.append)
        await wait_until(lambda: "o1" in pop.nodes())
        with pytest.raises(NoRoute):
            pop.resolve(NS)
        await origin.announce(NS)
        took = await wait_until(lambda: pop.route(NS) is not None, within=2)
        assert took < 0.5  # pushed by the route_set message, not found by a later scan
        up = pop.resolve(NS)
        assert (up.node_id, up.role, up.quic, up.path) == (
            "o1",
            NodeRole.ORIGIN,
            "o1.test:4433",
            ("p1",),
        )
        await origin.withdraw(NS)
        await wait_until(lambda: pop.route(NS) is None, within=2)
        with pytest.raises(NoRoute):
            pop.resolve(NS)
        assert [e.event for e in seen if e.namespace == NS] == ["route_set", "route_gone"]
        stats = pop.statistics()
        assert stats.bus_up and stats.nodes == 2 and stats.heartbeats > 0


async def test_pop_prefers_an_origin_in_its_own_region(make_bus: Callable[[], RedisBus]) -> None:
    async with (
        running(make_bus(), node("o-us", NodeRole.ORIGIN, "us")) as o_us,
        running(make_bus(), node("o-eu", NodeRole.ORIGIN, "eu")) as o_eu,
        running(make_bus(), node("p-us", NodeRole.POP, "us")) as p_us,
        running(make_bus(), node("p-ap", NodeRole.POP, "ap")) as p_ap,
    ):
        await o_us.announce(NS)
        await asyncio.sleep(0.01)
        await o_eu.announce(NS)  # the route record now names o-eu (last writer)
        await wait_until(lambda: p_us.route(NS) is not None and p_us.route(NS).origin == "o-eu")  # type: ignore[union-attr]
        await wait_until(lambda: NS in p_us.nodes()["o-us"].hosts)
        assert p_us.resolve(NS).node_id == "o-us"
        # No origin in its region: the routed (most recent) origin wins.
        await wait_until(lambda: NS in p_ap.nodes().get("o-us", node("x", NodeRole.POP, "")).hosts)
        assert p_ap.resolve(NS).node_id == "o-eu"


async def test_parent_pop_of_another_region_without_loops(make_bus: Callable[[], RedisBus]) -> None:
    async with (
        running(make_bus(), node("o1", NodeRole.ORIGIN, "eu")) as origin,
        running(make_bus(), node("edge", NodeRole.POP, "ap"), parent_regions=["us"]) as edge,
        # A misconfigured regional POP that points back at the edge's region.
        running(make_bus(), node("reg", NodeRole.POP, "us"), parent_regions=["ap"]) as regional,
        running(
            make_bus(), node("edge2", NodeRole.POP, "ap"), parent_regions=["us"], max_hops=1
        ) as shallow,
    ):
        await origin.announce(NS)
        for t in (edge, regional, shallow):
            await wait_until(lambda t=t: t.route(NS) is not None and len(t.nodes()) == 4)  # type: ignore[misc]
        first = edge.resolve(NS)
        assert (first.node_id, first.role, first.origin, first.path) == (
            "reg",
            NodeRole.POP,
            "o1",
            ("edge",),
        )
        # The regional POP would pick an "ap" parent, but the only ones are on the path
        # (edge) or would exceed the hop budget: it goes to the origin.
        second = regional.resolve(NS, first.path)
        assert second.role is NodeRole.ORIGIN and second.path == ("edge", "reg")
        with pytest.raises(RouteLoop):
            edge.resolve(NS, second.path)
        # max_hops=1: never through another POP.
        assert shallow.resolve(NS).role is NodeRole.ORIGIN
        # A request that already made max_hops goes straight to the origin.
        assert regional.resolve(NS, ("a", "b")).role is NodeRole.ORIGIN


async def test_killed_node_expires_and_publisher_moves_to_another_origin(
    make_bus: Callable[[], RedisBus],
) -> None:
    async with (
        running(make_bus(), node("o2", NodeRole.ORIGIN, "eu")) as o2,
        running(make_bus(), node("p1", NodeRole.POP, "eu")) as pop,
    ):
        o1 = Topology(
            make_bus(), node("o1", NodeRole.ORIGIN, "eu"), heartbeat_interval=BEAT, ttl=TTL
        )
        o1_task = asyncio.create_task(o1.run())
        await o1.wait_ready()
        await o1.announce(NS)
        await wait_until(lambda: pop.route(NS) is not None and "o1" in pop.nodes())
        assert pop.resolve(NS).node_id == "o1"
        # "SIGKILL": the heartbeat stops without any goodbye.
        o1_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await o1_task
        took = await wait_until(lambda: "o1" not in pop.nodes(), within=3)
        assert took <= TTL + 3 * BEAT + 0.5  # TTL plus about one scan (slack for a busy CI)
        with pytest.raises(NoRoute):
            pop.resolve(NS)
        await o2.announce(NS)
        took = await wait_until(lambda: getattr(pop.route(NS), "origin", "") == "o2", within=2)
        assert took < 0.5 and pop.resolve(NS).node_id == "o2"


async def test_old_origin_does_not_steal_a_moved_route_back(
    make_bus: Callable[[], RedisBus],
) -> None:
    bus = make_bus()
    async with (
        running(make_bus(), node("o1", NodeRole.ORIGIN, "eu")) as o1,
        running(make_bus(), node("o2", NodeRole.ORIGIN, "eu")) as o2,
    ):
        await o1.announce(NS)
        await asyncio.sleep(0.01)
        await o2.announce(NS)
        await asyncio.sleep(0.7)  # several heartbeats of both
        record = await bus.get(ROUTE_PREFIX + NS)
        assert record is not None and record["origin"] == "o2"


async def test_redis_outage_serves_last_known_topology_then_catches_up(
    redis_server,
    make_bus: Callable[[], RedisBus],  # type: ignore[no-untyped-def]
) -> None:
    checker = make_bus()
    async with (
        running(make_bus(), node("o1", NodeRole.ORIGIN, "eu")) as origin,
        running(make_bus(), node("p1", NodeRole.POP, "eu")) as pop,
    ):
        await origin.announce(NS)
        await wait_until(lambda: pop.route(NS) is not None)
        redis_server.stop()
        await wait_until(lambda: not pop.bus_up and not origin.bus_up, within=3)
        await asyncio.sleep(0.8)  # longer than the TTL: nothing may be forgotten locally
        assert pop.resolve(NS).node_id == "o1"
        # A broadcast that starts during the outage is announced when Redis returns.
        await origin.announce("stream/org_1/lv_late")
        redis_server.start()  # an empty Redis: every record was lost
        took = await wait_until(
            lambda: pop.bus_up and pop.route("stream/org_1/lv_late") is not None, within=5
        )
        assert took < 3
        assert pop.resolve("stream/org_1/lv_late").node_id == "o1"
        assert await checker.get(NODE_PREFIX + "o1") is not None
        assert await checker.get(ROUTE_PREFIX + NS) is not None
        assert pop.statistics().heartbeat_failures > 0


async def test_graceful_leave_tells_the_others_at_once(make_bus: Callable[[], RedisBus]) -> None:
    async with running(make_bus(), node("p1", NodeRole.POP, "eu")) as pop:
        async with running(make_bus(), node("o1", NodeRole.ORIGIN, "eu")) as origin:
            await origin.announce(NS)
            await wait_until(lambda: pop.route(NS) is not None)
        took = await wait_until(lambda: "o1" not in pop.nodes() and pop.route(NS) is None)
        assert took < 0.5  # the goodbye message, not TTL expiry (>= 0.6 s)


async def test_listener_failure_does_not_stop_the_topology() -> None:
    bus = MemoryBus()

    def broken(_: TopologyEvent) -> None:
        raise RuntimeError("listener bug")

    async with running(bus, node("p1", NodeRole.POP, "eu")) as pop:
        pop.add_listener(broken)
        async with running(bus, node("o1", NodeRole.ORIGIN, "eu")) as origin:
            await origin.announce(NS)
            await wait_until(lambda: pop.route(NS) is not None)
        with pytest.raises(Exception, match="only origins"):
            await pop.announce(NS)


def test_invalid_timing_is_refused() -> None:
    with pytest.raises(ValueError):
        Topology(MemoryBus(), node("n", NodeRole.POP, "eu"), heartbeat_interval=1, ttl=1)
    with pytest.raises(ValueError):
        Topology(MemoryBus(), node("n", NodeRole.POP, "eu"), max_hops=0)


async def test_periodic_resync_finds_routes_whose_message_was_lost(
    make_bus: Callable[[], RedisBus],
) -> None:
    writer = make_bus()
    async with (
        running(make_bus(), node("o1", NodeRole.ORIGIN, "eu")),
        Topology(
            make_bus(), node("p1", NodeRole.POP, "eu"), heartbeat_interval=BEAT, ttl=TTL,
            resync_every=5,
        ) as pop,
    ):  # fmt: skip
        await pop.wait_ready()
        await wait_until(lambda: "o1" in pop.nodes())
        # A route record appears with no route_set message (as if the message was lost).
        await writer.set(ROUTE_PREFIX + NS, Route(NS, "o1", "eu", "o1.test:4433", 1.0).to_record())
        await writer.index_touch(ROUTES_INDEX_KEY, NS, 60)
        took = await wait_until(lambda: pop.route(NS) is not None, within=3)
        assert took <= 5 * BEAT + 0.8  # resync_every (5) beats, with slack
        assert pop.resolve(NS).node_id == "o1"


async def test_corrupt_records_are_skipped_not_fatal(
    redis_url: str, make_bus: Callable[[], RedisBus]
) -> None:
    raw = aioredis.Redis.from_url(redis_url)
    try:
        for key, junk in (
            (NODE_PREFIX + "junk1", b"\xc1"),  # a byte msgpack never uses
            (NODE_PREFIX + "junk2", b"\x93\x01\x02\x03"),  # a list, not a map
            (ROUTE_PREFIX + "stream/x/lv_junk", b"plain text"),
            (ROUTE_PREFIX + NS, b"\x81\xa2at\xa3bad"),  # our route, corrupt: overwritten
        ):
            await raw.set(key, junk)
        async with (
            running(make_bus(), node("o1", NodeRole.ORIGIN, "eu")) as origin,
            running(make_bus(), node("p1", NodeRole.POP, "eu")) as pop,
        ):
            await origin.announce(NS)
            await wait_until(lambda: pop.route(NS) is not None and "o1" in pop.nodes())
            await asyncio.sleep(3 * BEAT)  # several beats and scans over the junk
            assert pop.statistics().heartbeats >= 3 and pop.bus_up
            assert set(pop.nodes()) == {"o1", "p1"}
            assert pop.resolve(NS).node_id == "o1"
    finally:
        await raw.aclose()


async def test_lookup_reads_a_route_the_snapshot_does_not_have(
    make_bus: Callable[[], RedisBus],
) -> None:
    writer = make_bus()
    pop_info = node("p1", NodeRole.POP, "eu")
    async with (
        running(make_bus(), node("o1", NodeRole.ORIGIN, "eu")),
        Topology(make_bus(), pop_info, heartbeat_interval=BEAT, ttl=TTL, resync_every=1000) as pop,
    ):
        await pop.wait_ready()
        await wait_until(lambda: "o1" in pop.nodes() and pop.bus_up)
        with pytest.raises(NoRoute):
            await pop.lookup(NS)
        # The route exists in Redis but its message never reached this POP.
        await writer.set(ROUTE_PREFIX + NS, Route(NS, "o1", "eu", "o1.test:4433", 1.0).to_record())
        with pytest.raises(NoRoute):
            pop.resolve(NS)
        up = await pop.lookup(NS)
        assert (up.node_id, up.path) == ("o1", ("p1",))
        assert pop.route(NS) is not None  # and now it is in the snapshot
        # A route to an origin without a node record (dead) is not followed.
        await writer.set(
            ROUTE_PREFIX + "stream/org_1/lv_dead",
            Route("stream/org_1/lv_dead", "o-dead", "eu", "x:1", 1.0).to_record(),
        )
        with pytest.raises(NoRoute, match="gone"):
            await pop.lookup("stream/org_1/lv_dead")


async def test_recovery_from_an_empty_redis_does_not_flap(
    redis_server,
    make_bus: Callable[[], RedisBus],  # type: ignore[no-untyped-def]
) -> None:
    events: list[TopologyEvent] = []
    origin_info = node("o1", NodeRole.ORIGIN, "eu")
    async with (
        # A slow origin: after the restart the POP is back well before it re-registers.
        Topology(make_bus(), origin_info, heartbeat_interval=0.6, ttl=1.8) as origin,
        running(make_bus(), node("p1", NodeRole.POP, "eu")) as pop,
    ):
        await origin.wait_ready()
        await origin.announce(NS)
        await wait_until(lambda: pop.route(NS) is not None and "o1" in pop.nodes())
        pop.add_listener(events.append)
        redis_server.stop()
        await wait_until(lambda: not pop.bus_up, within=3)
        redis_server.start()  # empty
        await wait_until(lambda: pop.bus_up, within=5)
        await asyncio.sleep(1.5)  # the origin re-registers within its beat
        assert [e for e in events if e.event in ("node_down", "route_gone")] == []
        assert pop.resolve(NS).node_id == "o1"


async def test_avoid_steers_clear_of_a_failed_upstream_when_there_is_a_choice(
    make_bus: Callable[[], RedisBus],
) -> None:
    async with (
        running(make_bus(), node("o-eu", NodeRole.ORIGIN, "eu")) as o_eu,
        running(make_bus(), node("o-us", NodeRole.ORIGIN, "us")) as o_us,
        running(make_bus(), node("reg", NodeRole.POP, "us")),
        running(make_bus(), node("edge", NodeRole.POP, "ap"), parent_regions=["us"]) as edge,
    ):
        await o_eu.announce(NS)
        await o_us.announce(NS)
        await wait_until(
            lambda: (
                len(edge.nodes()) == 4
                and all(NS in edge.nodes()[o].hosts for o in ("o-eu", "o-us"))
            )
        )
        assert edge.resolve(NS).node_id == "reg"  # parent first
        # The parent just failed: straight to the (routed) origin, path unchanged.
        up = edge.resolve(NS, avoid={"reg"})
        assert (up.role, up.path) == (NodeRole.ORIGIN, ("edge",))
        assert edge.resolve(NS, avoid={"reg", up.node_id}).node_id not in ("reg", up.node_id)
        # Avoiding every origin still answers (an avoided origin beats no route).
        assert edge.resolve(NS, avoid={"reg", "o-eu", "o-us"}).role is NodeRole.ORIGIN
        assert (await edge.lookup(NS, avoid={"reg"})).role is NodeRole.ORIGIN
