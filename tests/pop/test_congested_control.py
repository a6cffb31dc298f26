"""A viewer's requests are answered while its path is congested by media, on either stack.

This was a defect on picoquic: the session's control stream kept picoquic's default stream
priority (9) while subgroup streams get the objects' publisher priority, and picoquic sends
strictly by priority. Our ladder gives media priorities 1-3 (audio, then video from the
cheapest rendition up), so while the relay kept a congested viewer's stream rings busy
(it writes while the backlog is under 16 KiB) nothing of the control stream went out:
a browser viewer behind a 1.5 Mbit/s bottleneck asked for 360p under 720p and never got
its SUBSCRIBE_OK (tests/web/test_live_browser.py, ABR step-down). aioquic has no stream
priorities (round robin), so its control stream was never starved.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bench.impair import Impairment, ImpairmentProxy
from mesh.bus import MemoryBus
from moqt.aio import connect
from moqt.events import ObjectReceived, SubscribeAccepted
from moqt.types import SubscriptionFilter
from tests.pop.conftest import MakePop
from tests.pop.lab import Origin, Tokens
from tests.pop.test_upstream import NS, routed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

# Tracks of 30 objects of 6,000 bytes a second each (1.44 Mbit/s each), at the publisher
# priority our ladder gives video (below picoquic's default 9): the viewer takes two, then
# asks for the third.
OBJECTS, OBJECT_SIZE, PRIORITY = 30, 6_000, 2
# The viewer's bottleneck: less than one track (two streams keep the rings busy even
# while the relay resets one of them).
RATE = 1_000_000
# How long an answer may take on the congested path (it took forever before the fix).
ANSWER_WITHIN = 8.0


@pytest.mark.parametrize("quic_stack", ["aioquic", "picoquic"])
async def test_a_subscribe_is_answered_on_a_path_congested_by_media(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens, quic_stack: str
) -> None:
    origin = Origin(
        bus, "o1", "us", certs[0], certs[1], (NS,), tracks=(b"video", b"video2", b"video3"),
        group_ms=1000, objects=OBJECTS, object_size=OBJECT_SIZE, priority=PRIORITY,
    )  # fmt: skip
    async with origin.running():
        pop = await make_pop(quic_stack=quic_stack)
        await routed(pop)
        upstream = ("127.0.0.1", pop.quic_address[1])
        down = Impairment(rate=RATE, queue=96 * 1024)
        async with (
            ImpairmentProxy(("127.0.0.1", 0), upstream, down=down) as proxy,
            connect(f"moqt://127.0.0.1:{proxy.address[1]}", verify=False) as conn,
        ):
            token = tokens.mint().encode()
            for name in (b"video", b"video2"):
                rid = conn.session.subscribe(
                    NS, name, auth_token=token, filter=SubscriptionFilter.largest_object()
                )
                assert isinstance(await conn.wait_response(rid), SubscribeAccepted)
            received = 0
            congested = asyncio.Event()

            async def count() -> None:
                nonlocal received
                async for event in conn.events():
                    if isinstance(event, ObjectReceived):
                        received += len(event.payload)
                        if received > 400_000:
                            congested.set()  # 2+ s of media: the bottleneck is full

            counter = asyncio.create_task(count())
            try:
                await asyncio.wait_for(congested.wait(), 20)
                asked = time.monotonic()
                second = conn.session.subscribe(
                    NS, b"video3", auth_token=token, filter=SubscriptionFilter.largest_object()
                )
                answer = await asyncio.wait_for(conn.wait_response(second), ANSWER_WITHIN)
                waited = time.monotonic() - asked
            finally:
                counter.cancel()
                await asyncio.gather(counter, return_exceptions=True)
    assert isinstance(answer, SubscribeAccepted), answer
    assert waited < ANSWER_WITHIN
