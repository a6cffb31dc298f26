"""A draining node says so in its record at once, and no choice picks it (a rolling
restart drains several nodes at the same time: they must not send viewers to each other)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence

from mesh.bus import RedisBus
from mesh.bus_contract import NodeInfo, NodeRole
from mesh.topology import Topology
from tests.mesh.conftest import wait_until

NS = "stream/org_1/lv_abc"
# Long beats: whatever is seen within a second did not wait for the next beat.
BEAT, TTL = 5.0, 15.0


def node(node_id: str, role: NodeRole, region: str) -> NodeInfo:
    return NodeInfo(node_id, role, region, quic=f"{node_id}.test:4433", http=f"{node_id}.test:80")


@contextlib.asynccontextmanager
async def running(
    bus: RedisBus, info: NodeInfo, parent_regions: Sequence[str] = ()
) -> AsyncIterator[Topology]:
    async with Topology(
        bus, info, parent_regions=parent_regions, heartbeat_interval=BEAT, ttl=TTL
    ) as t:
        await t.wait_ready()
        yield t


def test_the_draining_field_round_trips_and_its_absence_means_not_draining() -> None:
    draining = NodeInfo("p1", NodeRole.POP, "eu", "h:1", draining=True)
    record = draining.to_record()
    assert record["draining"] is True
    assert NodeInfo.from_record("p1", record).draining is True
    # Not draining: not written, so the record is what the versions before it wrote.
    serving = NodeInfo("p1", NodeRole.POP, "eu", "h:1")
    assert "draining" not in serving.to_record()
    assert NodeInfo.from_record("p1", serving.to_record()).draining is False
    # A record of an older version (no field) or a value that is not true: not draining.
    old = {"role": "pop", "region": "eu", "quic": "h:1", "started": 1.0, "load": {}, "hosts": []}
    for value in (None, "yes", 1, False):
        with_value = old if value is None else old | {"draining": value}
        assert NodeInfo.from_record("p1", with_value).draining is False


async def test_two_nodes_draining_together_each_know_the_other_drains(
    make_bus: Callable[[], RedisBus],
) -> None:
    async with (
        running(make_bus(), node("p1", NodeRole.POP, "eu")) as p1,
        running(make_bus(), node("p2", NodeRole.POP, "eu")) as p2,
        running(make_bus(), node("p3", NodeRole.POP, "eu")) as p3,
    ):
        for t in (p1, p2, p3):
            await wait_until(lambda t=t: len(t.nodes()) == 3)  # type: ignore[misc]
        assert not any(n.draining for n in p3.nodes().values())
        # Both begin at the same moment; when either returns, it knows about the other
        # (its GOAWAY target is chosen right after).
        await asyncio.wait_for(asyncio.gather(p1.mark_draining(), p2.mark_draining()), TTL)
        assert p1.nodes()["p2"].draining and p2.nodes()["p1"].draining
        assert p1.node.draining and p2.node.draining
        # Announced at once: the third knows long before a beat (5 s) could have told it.
        await wait_until(
            lambda: p3.nodes()["p1"].draining and p3.nodes()["p2"].draining, within=BEAT / 2
        )
        assert not p1.nodes()["p3"].draining


async def test_a_draining_pop_is_no_parent_and_a_draining_origin_the_last_choice(
    make_bus: Callable[[], RedisBus],
) -> None:
    async with (
        running(make_bus(), node("o-a", NodeRole.ORIGIN, "us")) as o_a,
        running(make_bus(), node("o-b", NodeRole.ORIGIN, "us")) as o_b,
        running(make_bus(), node("reg1", NodeRole.POP, "us")) as reg1,
        running(make_bus(), node("reg2", NodeRole.POP, "us")) as reg2,
        running(make_bus(), node("edge", NodeRole.POP, "ap"), parent_regions=["us"]) as edge,
    ):
        await o_a.announce(NS)
        await o_b.announce(NS)
        await wait_until(
            lambda: (
                len(edge.nodes()) == 5 and all(NS in edge.nodes()[o].hosts for o in ("o-a", "o-b"))
            )
        )
        assert edge.resolve(NS).node_id == "reg1"  # equal load: the first by id
        await reg1.mark_draining()
        await wait_until(lambda: edge.nodes()["reg1"].draining, within=BEAT / 2)
        assert edge.resolve(NS).node_id == "reg2"
        await reg2.mark_draining()
        await wait_until(lambda: edge.nodes()["reg2"].draining, within=BEAT / 2)
        # No parent left that takes new sessions: straight to an origin.
        up = edge.resolve(NS)
        assert up.role is NodeRole.ORIGIN
        # The origin it picked drains (its publisher moves): the other one, while it hosts.
        draining_origin, other = (o_a, "o-b") if up.node_id == "o-a" else (o_b, "o-a")
        await draining_origin.mark_draining()
        await wait_until(lambda: edge.nodes()[up.node_id].draining, within=BEAT / 2)
        assert edge.resolve(NS).node_id == other
        # A draining origin is still used when it is the only one that hosts it.
        other_topology = o_b if other == "o-b" else o_a
        await other_topology.withdraw(NS)
        await wait_until(lambda: NS not in edge.nodes()[other].hosts, within=BEAT / 2)
        assert edge.resolve(NS).node_id == up.node_id
