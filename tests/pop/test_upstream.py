"""Upstream selection, merging, linger, re-routing and parent POPs, over real QUIC on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bench.impair import Impairment
from mesh.bus import MemoryBus
from mesh.node_credential import mint_node_credential
from moqt.aio import SessionOptions, connect, write_self_signed
from moqt.errors import RequestErrorCode
from moqt.events import (
    FetchAccepted,
    FetchStreamEnded,
    ObjectReceived,
    ObjectSource,
    RequestRejected,
    SubscribeAccepted,
    TrackStatusReceived,
)
from moqt.types import SubscriptionFilter
from pop import PopNode
from tests.pop.conftest import CLUSTER_KEY, MakePop
from tests.pop.lab import Origin, Tokens, Viewer, namespace_name, namespace_of

NS = namespace_of("lv_a")
NAME = namespace_name("lv_a")


async def until(predicate: Callable[[], bool], within: float = 5.0) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > within:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


@contextlib.asynccontextmanager
async def watching(viewer: Viewer, token: str) -> AsyncIterator[Viewer]:
    task = asyncio.create_task(viewer.watch(subscribe_token=token))
    try:
        await asyncio.wait_for(viewer.got_object.wait(), 10)
        yield viewer
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def url(pop: PopNode) -> str:
    return f"moqt://127.0.0.1:{pop.quic_address[1]}"


async def routed(pop: PopNode, name: str = NAME) -> None:
    assert pop.topology is not None
    topology = pop.topology
    await until(lambda: topology.route(name) is not None)


def make_origin(bus: MemoryBus, certs: tuple[Path, Path], node_id: str, region: str) -> Origin:
    return Origin(bus, node_id, region, certs[0], certs[1], (NS,), group_ms=200)


async def test_prefers_origin_in_own_region(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens
) -> None:
    eu, us = make_origin(bus, certs, "o-eu", "eu"), make_origin(bus, certs, "o-us", "us")
    async with eu.running(), us.running():
        pop = await make_pop(region="us")
        assert pop.topology is not None
        topology = pop.topology
        await until(lambda: len([n for n in topology.nodes().values() if n.hosts]) == 2)
        async with watching(Viewer(url(pop), NS), tokens.mint()) as viewer:
            assert {o.origin for o in viewer.objects} == {"o-us"}
            assert us.subscriptions() == 1 and eu.subscriptions() == 0


async def test_one_upstream_subscription_for_many_viewers_then_linger(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens
) -> None:
    origin = make_origin(bus, certs, "o1", "eu")
    async with origin.running():
        pop = await make_pop(linger=1.0)
        await routed(pop)
        async with contextlib.AsyncExitStack() as stack:
            viewers = [
                await stack.enter_async_context(watching(Viewer(url(pop), NS), tokens.mint()))
                for _ in range(3)
            ]
            assert origin.subscriptions() == 1
            assert pop.relay.statistics()["upstream_subscribes"] == 1
            await asyncio.sleep(0.5)
            assert all(len(v.objects) >= 2 for v in viewers)
        # Everyone left: the upstream subscription lingers, then goes.
        await until(lambda: pop.relay.statistics()["subscriptions"] == 0)
        left = time.monotonic()
        await asyncio.sleep(0.4)
        assert origin.subscriptions() == 1
        # A viewer coming back within the linger reuses it (no new upstream SUBSCRIBE).
        async with watching(Viewer(url(pop), NS), tokens.mint()):
            assert pop.relay.statistics()["upstream_subscribes"] == 1
        await until(lambda: pop.relay.statistics()["subscriptions"] == 0)
        left = time.monotonic()
        released = await until(lambda: origin.subscriptions() == 0, within=4)
        assert time.monotonic() - left >= 0.8, "released before the linger passed"
        assert released <= 2.5


async def test_reroutes_when_the_route_moves_and_when_the_origin_leaves(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens
) -> None:
    first, second = make_origin(bus, certs, "o-a", "eu"), make_origin(bus, certs, "o-b", "eu")
    async with first.running():
        pop = await make_pop()
        await routed(pop)
        async with watching(Viewer(url(pop), NS), tokens.mint()) as viewer:
            assert viewer.objects[-1].origin == "o-a"
            async with second.running():
                # The newer announcement owns the route: the POP follows it.
                moved = await until(lambda: viewer.objects[-1].origin == "o-b", within=3)
                assert moved < 3
                assert first.subscriptions() == 0
                assert second.subscriptions() == 1
            # o-b left (node_down / route_gone): back to o-a, the viewer never re-subscribed.
            back = await until(lambda: viewer.objects[-1].origin == "o-a", within=3)
            assert back < 3
            assert viewer.closed is None
            groups = [o.group for o in viewer.objects]
            assert groups == sorted(groups)
            assert pop.statistics().reroutes >= 2


async def test_parent_pop_of_another_region_without_loops(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens
) -> None:
    origin = make_origin(bus, certs, "o-ap", "ap")
    async with origin.running():
        pop_eu = await make_pop(node_id="pop-eu", region="eu", parent_regions=("us",))
        pop_us = await make_pop(node_id="pop-us", region="us", parent_regions=("eu",))
        assert pop_us.topology is not None
        topology = pop_us.topology
        await until(lambda: "pop-eu" in topology.nodes() and topology.route(NAME) is not None)
        async with watching(Viewer(url(pop_us), NS), tokens.mint()) as viewer:
            assert [link.key.node_id for link in pop_us.pool.links()] == ["pop-eu"]
            # pop-eu does not go back to region us: it takes the origin directly.
            assert [link.key.node_id for link in pop_eu.pool.links()] == ["o-ap"]
            assert [link.key.path for link in pop_eu.pool.links()] == [("pop-us", "pop-eu")]
            assert origin.subscriptions() == 1
            assert pop_eu.statistics().relay_links == 1
            await asyncio.sleep(0.3)
            assert len(viewer.objects) >= 2


async def test_relay_link_requests_need_a_token_of_their_own(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens
) -> None:
    origin = make_origin(bus, certs, "o1", "eu")
    async with origin.running():
        pop = await make_pop()
        await routed(pop)
        # A relay link must come from a POP of the registry, with a node credential.
        node = SessionOptions(auth_token=mint_node_credential(CLUSTER_KEY, "pop-x").encode())
        async with connect(url(pop) + "/relay?hops=pop-x", verify=False, options=node) as fake:
            closed = await asyncio.wait_for(fake.wait_closed(), 5)
            assert closed.reason == "auth_failed" and closed.by_peer
        await make_pop(node_id="pop-x")
        assert pop.topology is not None
        topology = pop.topology
        await until(lambda: "pop-x" in topology.nodes())
        async with connect(url(pop) + "/relay?hops=pop-x", verify=False, options=node) as link:
            rid = link.session.subscribe(NS, b"video")
            answer = await asyncio.wait_for(link.wait_response(rid), 5)
            assert isinstance(answer, RequestRejected)
            assert answer.code == RequestErrorCode.UNAUTHORIZED
            assert not link.is_closed  # one bad request does not cut a multiplexed link
            rid = link.session.subscribe(NS, b"audio", auth_token=tokens.mint().encode())
            answer = await asyncio.wait_for(link.wait_response(rid), 5)
            # Authorized; the origin has no audio track, which is the origin's answer.
            assert isinstance(answer, RequestRejected)
            assert answer.code == RequestErrorCode.DOES_NOT_EXIST


async def test_unknown_namespace_is_does_not_exist(make_pop: MakePop, tokens: Tokens) -> None:
    pop = await make_pop()
    viewer = Viewer(url(pop), namespace_of("lv_nobody"))
    await asyncio.wait_for(viewer.watch(subscribe_token=tokens.mint("lv_nobody")), 5)
    assert isinstance(viewer.rejected, RequestRejected)
    assert viewer.rejected.code == RequestErrorCode.DOES_NOT_EXIST


async def test_late_joiner_gets_the_current_group_from_the_pop_cache(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens
) -> None:
    origin = Origin(bus, "o1", "eu", certs[0], certs[1], (NS,), group_ms=1000)
    async with origin.running():
        pop = await make_pop()
        await routed(pop)
        # The first viewer makes the POP subscribe upstream in the middle of a group
        # (objects every 250 ms): objects 0 and 1 of that group are already gone by.
        await asyncio.sleep((400 - (time.time() * 1000) % 1000) % 1000 / 1000)
        group = int(time.time() * 1000) // 1000
        first = Viewer(url(pop), NS)
        task = asyncio.create_task(
            first.watch(subscribe_token=tokens.mint(), flt=SubscriptionFilter.largest_object())
        )
        try:
            await asyncio.sleep(0.2)
            async with connect(url(pop), verify=False) as late:
                token = tokens.mint().encode()
                rid = late.session.subscribe(
                    NS, b"video", auth_token=token, filter=SubscriptionFilter.largest_object()
                )
                answer = await asyncio.wait_for(late.wait_response(rid), 5)
                assert isinstance(answer, SubscribeAccepted)
                assert answer.largest is not None and answer.largest.group == group
                fid = late.session.joining_fetch(rid, 0)
                assert isinstance(await asyncio.wait_for(late.wait_response(fid), 5), FetchAccepted)
                fetched = []
                async for event in late.events():
                    if isinstance(event, ObjectReceived) and event.source is ObjectSource.FETCH:
                        fetched.append((event.group_id, event.object_id))
                    if isinstance(event, FetchStreamEnded):
                        break
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        # The whole current group from object 0, served by the POP's cache.
        assert fetched[0] == (group, 0), fetched
        assert [o for _, o in fetched] == list(range(len(fetched)))
        assert origin.subscriptions() == 1


async def test_upstream_goaway_moves_tracks_to_another_origin(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens
) -> None:
    near, far = make_origin(bus, certs, "o-eu", "eu"), make_origin(bus, certs, "o-us", "us")
    async with near.running(), far.running():
        pop = await make_pop(region="eu")
        assert pop.topology is not None
        topology = pop.topology
        await until(lambda: len([n for n in topology.nodes().values() if n.hosts]) == 2)
        async with watching(Viewer(url(pop), NS), tokens.mint()) as viewer:
            assert viewer.objects[-1].origin == "o-eu"
            # The near origin drains (GOAWAY, sessions stay open meanwhile): the POP moves
            # the track to the other origin although the near one is still up.
            drain = asyncio.create_task(near.node.drain(grace=3.0))
            try:
                moved = await until(lambda: viewer.objects[-1].origin == "o-us", within=3)
                assert not drain.done()
            finally:
                await drain
            print(f"\nGOAWAY -> objects via o-us after {moved * 1000:.0f} ms")
            assert viewer.closed is None
            assert far.subscriptions() == 1


async def test_cold_pop_answers_track_status_from_upstream(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens
) -> None:
    origin = make_origin(bus, certs, "o1", "eu")
    async with origin.running():
        pop = await make_pop()
        await routed(pop)
        options = SessionOptions(auth_token=tokens.mint().encode())
        async with connect(url(pop), verify=False, options=options) as conn:
            rid = conn.session.track_status(NS, b"video")
            answer = await asyncio.wait_for(conn.wait_response(rid), 5)
            assert isinstance(answer, TrackStatusReceived)
            assert answer.largest is not None
            assert answer.largest.group >= int(time.time() * 1000) // 200 - 2
            rid = conn.session.track_status(NS, b"no-such-track")
            answer = await asyncio.wait_for(conn.wait_response(rid), 5)
            assert isinstance(answer, RequestRejected)
            assert answer.error is RequestErrorCode.DOES_NOT_EXIST
        # Asking did not subscribe anything upstream.
        assert origin.subscriptions() == 0


@pytest.mark.latency  # a 3 s bound on the switch: run alone, not beside another test
async def test_silent_upstream_is_left_for_one_that_streams(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens
) -> None:
    near, far = make_origin(bus, certs, "o-eu", "eu"), make_origin(bus, certs, "o-us", "us")
    async with near.running(), far.running():
        pop = await make_pop(region="eu")
        assert pop.topology is not None
        topology = pop.topology
        await until(lambda: len([n for n in topology.nodes().values() if n.hosts]) == 2)
        async with watching(Viewer(url(pop), NS), tokens.mint()) as viewer:
            assert viewer.objects[-1].origin == "o-eu"
            # o-eu hangs: its session and registry record stay, its track goes silent.
            near.publishers[0].frozen = True
            frozen_at = time.time()
            await until(lambda: viewer.objects[-1].origin == "o-us", within=4)
            first = next(o for o in viewer.objects if o.origin == "o-us")
            print(f"\nsilent upstream -> objects via o-us after {first.at - frozen_at:.2f} s")
            assert first.at - frozen_at < 3.0
            assert first.obj == 0  # resumed at a group boundary
            assert viewer.closed is None


async def test_quiet_track_is_not_taken_for_a_stall(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens
) -> None:
    # One object every 2 s (like a catalog track): slower than the 1.5 s stall window.
    origin = Origin(bus, "o1", "eu", certs[0], certs[1], (NS,), group_ms=2000, objects=1)
    async with origin.running():
        pop = await make_pop()
        await routed(pop)
        viewer = Viewer(url(pop), NS)
        task = asyncio.create_task(viewer.watch(subscribe_token=tokens.mint()))
        try:
            await until(lambda: len(viewer.objects) >= 3, within=8)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert pop.pool.failures == 0
        assert pop.router.reroutes == 0
        assert pop.relay.statistics()["upstream_subscribes"] == 1


async def test_upstream_certificate_is_verified_when_a_ca_is_given(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens, tmp_path: Path
) -> None:
    origin = make_origin(bus, certs, "o1", "eu")
    other_ca, _ = write_self_signed(tmp_path / "other")
    async with origin.running():
        trusting = await make_pop(node_kwargs={"upstream_cafile": str(certs[0])})
        wary = await make_pop(node_kwargs={"upstream_cafile": str(other_ca)})
        await routed(trusting)
        await routed(wary)
        async with watching(Viewer(url(trusting), NS), tokens.mint()):
            pass
        refused = Viewer(url(wary), NS)
        await asyncio.wait_for(refused.watch(subscribe_token=tokens.mint()), 10)
        assert isinstance(refused.rejected, RequestRejected)
        assert refused.rejected.reason == "upstream unavailable"


async def test_parent_pop_gone_goes_straight_to_the_origin(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens
) -> None:
    origin = make_origin(bus, certs, "o-ap", "ap")
    async with origin.running():
        pop_eu = await make_pop(node_id="pop-eu", region="eu")
        pop_us = await make_pop(node_id="pop-us", region="us", parent_regions=("eu",))
        assert pop_us.topology is not None
        topology = pop_us.topology
        await until(lambda: "pop-eu" in topology.nodes() and topology.route(NAME) is not None)
        async with watching(Viewer(url(pop_us), NS), tokens.mint()) as viewer:
            assert [link.key.node_id for link in pop_us.pool.links()] == ["pop-eu"]
            stopped_at = time.time()
            await pop_eu.stop()
            await until(lambda: viewer.objects[-1].at > stopped_at + 0.1, within=5)
            assert [link.key.node_id for link in pop_us.pool.links()] == ["o-ap"]
            first = next(o for o in viewer.objects if o.at > stopped_at)
            print(f"\nparent POP gone -> objects straight from the origin after "
                  f"{(first.at - stopped_at) * 1000:.0f} ms")  # fmt: skip
            assert viewer.closed is None


async def test_stall_reconnect_replays_what_the_pop_missed(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens
) -> None:
    # The path to the origin goes dead mid-group for longer than the stall window (like a
    # SIGSTOPped origin): the POP closes the link and subscribes again. The origin kept
    # writing into its cache meanwhile, so the viewer must get every object, in order,
    # with no group skipped: the POP asks for what it has not got (ABSOLUTE_START).
    origin = Origin(bus, "o1", "eu", certs[0], certs[1], (NS,), group_ms=400, path=Impairment())
    async with origin.running():
        pop = await make_pop()
        await routed(pop)
        async with watching(Viewer(url(pop), NS), tokens.mint()) as viewer:
            await until(lambda: len(viewer.objects) >= 6)
            assert origin.proxy is not None
            (link,) = pop.pool.links()
            origin.proxy.blackhole = True
            await until(lambda: link.failed, within=10)  # the POP took the silence for a stall
            origin.proxy.blackhole = False
            await until(lambda: pop.router.reroutes >= 1, within=10)
            resumed = time.time()
            await until(lambda: viewer.objects[-1].at > resumed + 1.0, within=10)
        # Each group on its own stream: groups may interleave, a group's objects may not.
        groups: dict[int, list[int]] = {}
        for o in viewer.objects:
            groups.setdefault(o.group, []).append(o.obj)
        first, last = min(groups), max(groups)
        skipped = [g for g in range(first, last + 1) if g not in groups]
        holes = {g: objs for g, objs in groups.items() if g != last and objs != [0, 1, 2, 3]}
        assert not skipped and not holes, f"skipped groups {skipped}, holes {holes}"
        assert pop.relay.statistics()["resumed_total"] == 1
        assert viewer.closed is None
