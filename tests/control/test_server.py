"""The control plane embedded in a running event loop (as ``clutchcall up`` runs it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from control.server import bind, parse_hostport, serve_async
from control.settings import ControlSettings
from mesh.bus import MemoryBus


async def test_embedded_server_shares_the_bus_and_stops_on_cancel(tmp_path: Path) -> None:
    bus = MemoryBus()
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    settings = ControlSettings(db=f"sqlite:///{tmp_path / 'c.db'}")
    task = asyncio.create_task(serve_async(settings, sock, bus=bus))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            async with asyncio.timeout(10):
                while True:
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)
            assert (await client.get("/readyz")).json()["status"] == "ready"
            # The lifespan's resync wrote the JWKS record to the shared bus.
            for _ in range(100):
                if await bus.get("clutchcall:jwks") is not None:
                    break
                await asyncio.sleep(0.05)
            jwks = (await client.get("/.well-known/jwks.json")).json()
            assert await bus.get("clutchcall:jwks") == jwks
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    sock.close()
    with pytest.raises(httpx.TransportError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{port}/healthz", timeout=1)


def test_parse_hostport() -> None:
    assert parse_hostport("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_hostport(":9000") == ("0.0.0.0", 9000)
    assert parse_hostport("[::1]:80") == ("::1", 80)
    with pytest.raises(ValueError):
        parse_hostport("host:http")
