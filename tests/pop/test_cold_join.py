"""A cold POP 80 ms (RTT) from its origin, over real QUIC: the first viewers get their
whole start group (see pop._repair for why the origin may skip its tail)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bench.impair import Impairment
from mesh.bus import MemoryBus
from moqt.aio import connect
from moqt.events import ObjectReceived, SubscribeAccepted
from moqt.types import SubscriptionFilter
from tests.pop.conftest import MakePop
from tests.pop.lab import Origin, Tokens, decode_payload
from tests.pop.test_upstream import NS, routed, url

pytestmark = [pytest.mark.latency]

OBJECTS = 30  # per group: one second of 30 fps video ...
OBJECT_SIZE = 10_000  # ... at about 2.4 Mbit/s, like bench.regions' clip


async def _watch(
    pop_url: str, token: str, seen: list[tuple[int, int]], ready: asyncio.Event
) -> None:
    """SUBSCRIBE (LargestObject) + joining FETCH of the current group, like our viewer."""
    async with connect(pop_url, verify=False) as conn:
        rid = conn.session.subscribe(
            NS, b"video", auth_token=token.encode(), filter=SubscriptionFilter.largest_object()
        )
        answer = await conn.wait_response(rid)
        assert isinstance(answer, SubscribeAccepted)
        conn.session.joining_fetch(rid, 0)
        ready.set()
        async for event in conn.events():
            if isinstance(event, ObjectReceived) and event.payload:
                _, group, obj, _ = decode_payload(event.payload)
                seen.append((group, obj))


async def test_cold_pop_over_a_slow_path_delivers_the_whole_start_group(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens
) -> None:
    origin = Origin(
        bus, "o1", "us", certs[0], certs[1], (NS,),
        group_ms=1000, objects=OBJECTS, object_size=OBJECT_SIZE,
        path=Impairment(delay=0.04),
    )  # fmt: skip
    async with origin.running():
        pop = await make_pop(region="ap")
        await routed(pop)
        # Start in the middle of a group: with the POP's upstream connection and
        # subscription on the way, the origin sees the SUBSCRIBE late in the group,
        # where its answer to the joining FETCH is most of a group (REGIONS saw 3/24).
        await asyncio.sleep((500 - (time.time() * 1000) % 1000) % 1000 / 1000)
        seen: list[tuple[int, int]] = []
        ready = asyncio.Event()
        task = asyncio.create_task(_watch(url(pop), tokens.mint(), seen, ready))
        try:
            await asyncio.wait_for(ready.wait(), 5)
            await asyncio.sleep(2.5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        skipped = origin.node.relay.statistics()["drops_stale_group"]
        repairs = pop.relay.statistics()["start_group_repairs_total"]
    groups = sorted({g for g, _ in seen})
    print(f"\norigin skipped {skipped} stale objects for the POP, the POP repaired {repairs}")
    assert len(groups) >= 2, seen
    for group in groups[:-1]:  # the last one may still be arriving
        missing = sorted(set(range(OBJECTS)) - {o for g, o in seen if g == group})
        assert not missing, f"group {group} lacks objects {missing}"
    if skipped:
        assert repairs == 1
