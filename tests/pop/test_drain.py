"""A draining POP moves its viewers: GOAWAY names another live POP of its region that
is not draining too (a rolling restart drains several at once)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from mesh.bus_contract import NodeInfo, NodeRole
from moqt.aio import MoqtConnection, SessionOptions, connect
from moqt.events import GoawayReceived
from pop import PopNode
from pop._publishers import choose_ingest_origin
from tests.mesh.conftest import wait_until
from tests.pop.conftest import MakePop
from tests.pop.lab import Tokens


async def goaway_of(conn: MoqtConnection) -> GoawayReceived:
    async with asyncio.timeout(10):
        while True:
            event = await conn.wait_event()
            if isinstance(event, GoawayReceived):
                return event


def knows(pop: PopNode, *node_ids: str) -> bool:
    return pop.topology is not None and set(node_ids) <= set(pop.topology.nodes())


@pytest.mark.parametrize("scheme", ["moqt", "https"])
async def test_a_draining_pop_sends_its_viewers_to_another_pop_of_its_region(
    make_pop: MakePop, tokens: Tokens, scheme: str
) -> None:
    pop1 = await make_pop(node_id="pop1", region="eu")
    pop2 = await make_pop(node_id="pop2", region="eu")
    await make_pop(node_id="pop3", region="us")  # not in the region: never the target
    await wait_until(lambda: knows(pop1, "pop2", "pop3"), within=10)
    assert pop2.topology is not None
    url = f"{scheme}://127.0.0.1:{pop1.quic_address[1]}/live?via=drain"
    options = SessionOptions(auth_token=tokens.mint().encode())
    async with connect(url, verify=False, options=options) as viewer:
        await wait_until(lambda: pop1.statistics().viewers == 1, within=10)
        drain = asyncio.create_task(pop1.drain(grace=5.0))
        goaway = await goaway_of(viewer)
        assert goaway.new_uri == f"{scheme}://{pop2.topology.node.quic}/live?via=drain"
        # The URI is one a client can follow: the other POP takes the same session.
        async with connect(goaway.new_uri, verify=False, options=options):
            await wait_until(lambda: pop2.statistics().viewers == 1, within=10)
    await asyncio.wait_for(drain, 5)


async def test_a_lone_draining_pop_names_no_new_uri(make_pop: MakePop, tokens: Tokens) -> None:
    pop = await make_pop(node_id="pop1", region="eu")
    await make_pop(node_id="pop2", region="us")
    await wait_until(lambda: knows(pop, "pop2"), within=10)
    options = SessionOptions(auth_token=tokens.mint().encode())
    async with connect(f"moqt://127.0.0.1:{pop.quic_address[1]}", verify=False, options=options):
        await wait_until(lambda: pop.statistics().viewers == 1, within=10)
        drain = asyncio.create_task(pop.drain(grace=5.0))
        async with connect(
            f"moqt://127.0.0.1:{pop.quic_address[1]}", verify=False, options=options
        ) as late:  # set up during the drain: GOAWAY at once
            assert (await goaway_of(late)).new_uri == ""
    await asyncio.wait_for(drain, 5)


def load_of(pop: PopNode, node_id: str) -> float:
    assert pop.topology is not None
    node = pop.topology.nodes().get(node_id)
    return sum(node.load.values()) if node is not None else -1.0


async def test_pops_draining_together_send_their_viewers_to_the_one_that_is_not(
    make_pop: MakePop, tokens: Tokens
) -> None:
    # A rolling restart drains pop1 and pop2 at once. pop3 carries more viewers, so
    # without the draining flag each would name the other (less loaded) as the target.
    pops = [await make_pop(node_id=f"pop{i}", region="eu") for i in (1, 2, 3)]
    pop1, pop2, pop3 = pops
    options = SessionOptions(auth_token=tokens.mint().encode())
    async with contextlib.AsyncExitStack() as stack:
        viewers: list[MoqtConnection] = []
        for pop, count in ((pop1, 1), (pop2, 1), (pop3, 2)):
            for _ in range(count):
                url = f"moqt://127.0.0.1:{pop.quic_address[1]}/live"
                viewers.append(
                    await stack.enter_async_context(connect(url, verify=False, options=options))
                )
        await wait_until(
            lambda: all(
                load_of(p, "pop1") == 1 and load_of(p, "pop2") == 1 and load_of(p, "pop3") == 2
                for p in pops
            ),
            within=15,
        )
        drains = [asyncio.create_task(p.drain(grace=5.0)) for p in (pop1, pop2)]
        first, second = await asyncio.gather(goaway_of(viewers[0]), goaway_of(viewers[1]))
        assert pop3.topology is not None
        target = f"moqt://{pop3.topology.node.quic}/live"
        assert (first.new_uri, second.new_uri) == (target, target)
        for pop in (pop1, pop2):
            assert pop.topology is not None and pop.topology.node.draining
    await asyncio.wait_for(asyncio.gather(*drains), 10)


async def test_a_two_pop_cluster_draining_at_once_names_no_target(
    make_pop: MakePop, tokens: Tokens
) -> None:
    pop1 = await make_pop(node_id="pop1", region="eu")
    pop2 = await make_pop(node_id="pop2", region="eu")
    await wait_until(lambda: knows(pop1, "pop2") and knows(pop2, "pop1"), within=10)
    options = SessionOptions(auth_token=tokens.mint().encode())
    async with (
        connect(
            f"moqt://127.0.0.1:{pop1.quic_address[1]}/live", verify=False, options=options
        ) as v1,
        connect(
            f"moqt://127.0.0.1:{pop2.quic_address[1]}/live", verify=False, options=options
        ) as v2,
    ):
        await wait_until(
            lambda: pop1.statistics().viewers == 1 and pop2.statistics().viewers == 1, within=10
        )
        drains = [asyncio.create_task(p.drain(grace=5.0)) for p in (pop1, pop2)]
        first, second = await asyncio.gather(goaway_of(v1), goaway_of(v2))
        # Neither is a live target: the clients reconnect where they came from.
        assert (first.new_uri, second.new_uri) == ("", "")
    await asyncio.wait_for(asyncio.gather(*drains), 10)


def test_a_publisher_is_carried_to_a_draining_origin_only_when_no_other_is_left() -> None:
    def origin(node_id: str, region: str, *, draining: bool = False) -> NodeInfo:
        return NodeInfo(node_id, NodeRole.ORIGIN, region, f"{node_id}:1", draining=draining)

    nodes = {n.node_id: n for n in (origin("o1", "eu", draining=True), origin("o2", "us"))}
    chosen = choose_ingest_origin(nodes, "eu")
    assert chosen is not None and chosen.node_id == "o2"  # another region beats a draining one
    only = {"o1": nodes["o1"]}
    chosen = choose_ingest_origin(only, "eu")
    assert chosen is not None and chosen.node_id == "o1"
    # The origin the namespace is routed to keeps it (the input is live there).
    chosen = choose_ingest_origin(nodes, "eu", hosting="o1")
    assert chosen is not None and chosen.node_id == "o1"
