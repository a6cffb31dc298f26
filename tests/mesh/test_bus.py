"""The bus against a real redis-server (and the in-memory twin with the same tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mesh.bus import Bus, BusMessage, BusUnavailable, MemoryBus, RedisBus, connect_bus


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    if request.param == "memory":
        b: Bus = MemoryBus()
    else:
        b = RedisBus(request.getfixturevalue("redis_url"))
    yield b
    await b.close()


async def test_records_round_trip_and_expire(bus: Bus) -> None:
    await bus.set("clutchcall:t:a", {"x": 1, "b": b"\x00\xff"})
    await bus.set("clutchcall:t:b", {"y": "z"}, ttl=0.2)
    assert await bus.get("clutchcall:t:a") == {"x": 1, "b": b"\x00\xff"}
    assert sorted(await bus.keys("clutchcall:t:*")) == ["clutchcall:t:a", "clutchcall:t:b"]
    assert await bus.get_many(["clutchcall:t:b", "clutchcall:t:none", "clutchcall:t:a"]) == [
        {"y": "z"},
        None,
        {"x": 1, "b": b"\x00\xff"},
    ]
    await asyncio.sleep(0.35)
    assert await bus.get("clutchcall:t:b") is None
    assert await bus.keys("clutchcall:t:*") == ["clutchcall:t:a"]
    await bus.delete("clutchcall:t:a")
    assert await bus.get("clutchcall:t:a") is None


async def test_publish_reaches_every_subscriber(bus: Bus) -> None:
    got: list[list[BusMessage]] = [[], []]

    async def listen(i: int, ready: asyncio.Event) -> None:
        async with bus.subscribe("chan:a", "chan:b") as messages:
            ready.set()
            async for m in messages:
                got[i].append(m)
                if len(got[i]) == 2:
                    return

    ready = [asyncio.Event(), asyncio.Event()]
    async with asyncio.timeout(5):
        async with asyncio.TaskGroup() as tg:
            for i in range(2):
                tg.create_task(listen(i, ready[i]))
            for r in ready:
                await r.wait()
            await asyncio.sleep(0.1)  # redis SUBSCRIBE is acknowledged asynchronously
            await bus.publish("chan:a", {"n": 1})
            await bus.publish("chan:other", {"n": 99})
            await bus.publish("chan:b", {"n": 2})
    for messages in got:
        assert [(m.channel, m.data) for m in messages] == [
            ("chan:a", {"n": 1}),
            ("chan:b", {"n": 2}),
        ]


async def test_redis_outage_raises_typed_error_and_subscription_resyncs(redis_server) -> None:  # type: ignore[no-untyped-def]
    bus = RedisBus(redis_server.url, retry_interval=0.1, timeout=0.5)
    seen: list[BusMessage] = []
    subscribed = asyncio.Event()
    resynced = asyncio.Event()

    async def listen() -> None:
        async with bus.subscribe("chan:r") as messages:
            subscribed.set()
            async for m in messages:
                seen.append(m)
                if m.resync:
                    resynced.set()
                else:
                    return

    async with asyncio.timeout(20):
        async with asyncio.TaskGroup() as tg:
            tg.create_task(listen())
            await subscribed.wait()
            redis_server.stop()
            with pytest.raises(BusUnavailable):
                await bus.set("k", {"v": 1})
            with pytest.raises(BusUnavailable):
                await bus.keys("clutchcall:*")
            assert await bus.ping() is False
            redis_server.start()
            await resynced.wait()
            await bus.publish("chan:r", {"after": True})
            # Pooled connections from before the restart recover on their own.
            await bus.set("k", {"v": 2})
            assert await bus.get("k") == {"v": 2}
    assert seen[0].resync and seen[-1].data == {"after": True}
    await bus.close()


def test_connect_bus_picks_implementation() -> None:
    assert isinstance(connect_bus(None), MemoryBus)
    assert isinstance(connect_bus("memory://"), MemoryBus)
    assert isinstance(connect_bus("redis://127.0.0.1:1/0"), RedisBus)
    with pytest.raises(ValueError, match="unsupported bus URL"):
        connect_bus("amqp://x")
