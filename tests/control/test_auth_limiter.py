"""The auth-failure limiter: atomic, per address and key prefix, forwarded headers from proxies only."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from control.server import bind, serve_async
from control.settings import ControlSettings
from mesh.bus import Bus, MemoryBus

from .conftest import Api, open_api

BAD = "ck_badbadbad0"  # every bad key below shares these first 12 characters


@pytest.fixture(params=["memory", "redis"])
async def limited(
    request: pytest.FixtureRequest, db_url: str, redis_bus: Bus
) -> AsyncIterator[Api]:
    bus = redis_bus if request.param == "redis" else MemoryBus()
    async with open_api(db_url, bus, auth_failure_limit=10, auth_failure_window=30) as api:
        yield api


async def test_parallel_bad_keys_check_at_most_the_limit(limited: Api) -> None:
    answers = await asyncio.gather(
        *(
            limited.client.get("/v1/live_inputs", headers=limited.auth(f"{BAD}{i}"))
            for i in range(100)
        )
    )
    statuses = [a.status_code for a in answers]
    assert set(statuses) == {401, 429}
    assert statuses.count(401) == 10  # keys actually checked


async def test_a_valid_key_from_the_same_address_is_not_locked_out(limited: Api) -> None:
    for i in range(12):
        await limited.client.get("/v1/live_inputs", headers=limited.auth(f"{BAD}{i}"))
    throttled = await limited.client.get("/v1/live_inputs", headers=limited.auth(BAD))
    assert throttled.status_code == 429
    ok = await asyncio.gather(
        *(limited.client.get("/v1/live_inputs", headers=limited.auth()) for _ in range(30))
    )
    assert {r.status_code for r in ok} == {200}


@contextlib.asynccontextmanager
async def served(tmp_path: Path, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = ControlSettings(
        db=f"sqlite:///{tmp_path / 'c.db'}",
        auth_failure_limit=3,
        auth_failure_window=30,
        **settings,
    )
    task = asyncio.create_task(serve_async(config, sock, bus=MemoryBus()))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            async with asyncio.timeout(10):
                while True:
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)
            yield client
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


async def _statuses(client: httpx.AsyncClient) -> list[int]:
    out = []
    for i in range(6):
        r = await client.get(
            "/v1/live_inputs",
            headers={"Authorization": f"Bearer {BAD}", "X-Forwarded-For": f"203.0.113.{i}"},
        )
        out.append(r.status_code)
    return out


async def test_forwarded_for_is_ignored_unless_from_a_trusted_proxy(tmp_path: Path) -> None:
    async with served(tmp_path) as client:
        # Loopback is not a proxy unless configured: all six come from 127.0.0.1.
        assert await _statuses(client) == [401, 401, 401, 429, 429, 429]


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(tmp_path: Path) -> None:
    async with served(tmp_path, trusted_proxies=("127.0.0.1",)) as client:
        assert await _statuses(client) == [401] * 6
