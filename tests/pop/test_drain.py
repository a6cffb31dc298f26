"""A draining POP moves its viewers: GOAWAY names another live POP of its region."""

from __future__ import annotations

import asyncio

import pytest

from moqt.aio import MoqtConnection, SessionOptions, connect
from moqt.events import GoawayReceived
from pop import PopNode
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
