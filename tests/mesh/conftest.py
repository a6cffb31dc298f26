"""Fixtures for mesh tests: fast-timing buses on the private redis-server, polling helper."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from mesh.bus import RedisBus


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], within: float = 5.0, step: float = 0.01
) -> float:
    """Poll ``predicate`` until true; returns the seconds it took, fails the test on timeout."""
    start = time.monotonic()
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(step)


@pytest.fixture
async def make_bus(redis_url: str) -> AsyncIterator[Callable[[], RedisBus]]:
    """Independent RedisBus clients (one per simulated node), closed at teardown."""
    buses: list[RedisBus] = []

    def make() -> RedisBus:
        bus = RedisBus(redis_url, retry_interval=0.1, timeout=0.5)
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.close()
