"""Known defect, kept visible: over an 80 ms path with 2% loss the origin skips the tail of
groups for a POP (every viewer of it loses them) although the path has the capacity.

The origin's per-subscriber scheduler (mesh.relay._scheduler, rule (a)) treats a group as
stale once the next one has begun and abandons it when an object of it waited longer than
``skip_after`` (0.1 s). QUIC loss recovery on an 80 ms path (detection after about one RTT,
the congestion window halved) keeps the connection's backlog above ``backlog_threshold``
for about that long, so one lost packet near a group boundary becomes RESET_STREAM
(CANCELLED) of the rest of the group. No origin/ code is involved here: the origin is a bare
mesh.relay RelayNode. Remove the xfail once relay links are scheduled without that skip.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.impair import Impairment
from mesh.bus import MemoryBus
from tests.pop.conftest import MakePop
from tests.pop.lab import Origin, Tokens
from tests.pop.test_cold_join import OBJECTS, _watch
from tests.pop.test_upstream import NS, routed, url

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


@pytest.mark.xfail(
    strict=True,
    reason="origin skips stale groups on a relay link during loss recovery (mesh.relay)",
)
async def test_a_lossy_path_with_room_to_spare_loses_no_object(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens
) -> None:
    origin = Origin(
        bus, "o1", "us", certs[0], certs[1], (NS,),
        group_ms=1000, objects=OBJECTS, object_size=6_000,
        path=Impairment(delay=0.04, jitter=0.001, loss=0.02),
    )  # fmt: skip
    async with origin.running():
        pop = await make_pop(region="ap")
        await routed(pop)
        seen: list[tuple[int, int]] = []
        ready = asyncio.Event()
        task = asyncio.create_task(_watch(url(pop), tokens.mint(), seen, ready))
        try:
            await asyncio.wait_for(ready.wait(), 5)
            await asyncio.sleep(8)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        skipped = origin.node.relay.statistics()["drops_stale_group"]
    groups = sorted({g for g, _ in seen})
    holes = {
        group: sorted(set(range(OBJECTS)) - {o for g, o in seen if g == group})
        for group in groups[:-1]
    }
    assert not any(holes.values()), (skipped, {g: h for g, h in holes.items() if h})
