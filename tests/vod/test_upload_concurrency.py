"""One writer at a time: a second PATCH waits then gets 423 (also across two control-plane
nodes sharing Redis), a HEAD makes a dangling PATCH give up, nothing is ever interleaved."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.vod.servekit import served
from tests.vod.uploadkit import OCTETS, SEED, new_upload, upload_api
from vod.locks import MemoryLocks, RedisLocks, UploadLocks


async def _slow_body(
    data: bytes, pieces: int, pause: float, started: asyncio.Event
) -> AsyncIterator[bytes]:
    step = len(data) // pieces
    for i in range(pieces):
        yield data[i * step : (i + 1) * step if i < pieces - 1 else len(data)]
        started.set()
        await asyncio.sleep(pause)


@pytest.mark.parametrize("nodes", ["one", "two-with-redis"])
async def test_second_patch_waits_then_gets_423(
    tmp_path: Path, nodes: str, request: pytest.FixtureRequest
) -> None:
    settings = {}
    if nodes != "one":
        settings["redis"] = request.getfixturevalue("redis_url")
    db = f"sqlite:///{tmp_path / 'control.db'}"
    async with contextlib.AsyncExitStack() as stack:
        api, _q = await stack.enter_async_context(upload_api(tmp_path, db, **settings))
        other = api
        if nodes != "one":
            other, _q2 = await stack.enter_async_context(upload_api(tmp_path, db, **settings))
        url = (await new_upload(api))["uploadUrl"]
        data = bytes(range(256)) * 400
        started = asyncio.Event()
        slow = asyncio.ensure_future(
            api.client.patch(
                url,
                content=_slow_body(data, 10, 0.4, started),
                headers={**SEED, **OCTETS, "upload-offset": "0"},
            )
        )
        await started.wait()
        t0 = time.monotonic()
        r = await other.client.patch(
            url, content=b"z" * 1000, headers={**SEED, **OCTETS, "upload-offset": "0"}
        )
        waited = time.monotonic() - t0
        assert r.status_code == 423, r.text
        assert 2.0 <= waited < 4.0
        assert r.json()["status"] == 423 and "upload-offset" in r.headers
        first = await slow
        assert first.status_code == 204 and first.headers["upload-offset"] == str(len(data))
        r = await other.client.head(url, headers=SEED)
        assert r.headers["upload-offset"] == str(len(data))
        # The stored bytes are exactly the first writer's.
        stored = next((tmp_path / "data" / "uploads").glob("as_*.bin"))
        assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(data).digest()


async def test_head_makes_a_dangling_patch_give_up(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        created = await srv.new_upload()
        url = created["uploadUrl"]
        host, port = srv.base_url.removeprefix("http://").split(":")
        path = url.split(f":{port}", 1)[1]
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            head = (
                f"PATCH {path} HTTP/1.1\r\nHost: {host}:{port}\r\nTus-Resumable: 2.0.0\r\n"
                "Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                "Content-Length: 100000\r\n\r\n"
            )
            writer.write(head.encode() + b"a" * 30000)
            await writer.drain()
            # The client goes silent without closing. A resuming client asks for the offset.
            t0 = time.monotonic()
            r = await srv.client.head(url, headers=SEED)
            assert r.status_code == 200
            assert r.headers["upload-offset"] == "30000"
            assert time.monotonic() - t0 < 4.0
            r = await srv.client.patch(
                url, content=b"b" * 70000, headers={**SEED, **OCTETS, "upload-offset": "30000"}
            )
            assert r.status_code == 204 and r.headers["upload-offset"] == "100000"
            # The dangling request's late bytes are never appended.
            writer.write(b"c" * 70000)
            await writer.drain()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.read(65536), 2)
        finally:
            writer.close()
        r = await srv.client.head(url, headers=SEED)
        assert r.headers["upload-offset"] == "100000"
        stored = Path(srv.service.settings.data_dir) / "uploads" / f"{created['assetId']}.bin"
        assert stored.read_bytes() == b"a" * 30000 + b"b" * 70000


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_locks(kind: str, request: pytest.FixtureRequest) -> None:
    locks: UploadLocks = (
        MemoryLocks() if kind == "memory" else RedisLocks(request.getfixturevalue("redis_url"))
    )
    try:
        first = await locks.acquire("as_1", wait=0)
        assert first is not None and not await first.give_up_requested()
        assert await locks.acquire("as_1", wait=0.2) is None
        assert await first.give_up_requested()  # the waiter asked
        assert await first.refresh()
        other = await locks.acquire("as_2", wait=0)
        assert other is not None
        await first.release()
        second = await locks.acquire("as_1", wait=0)
        assert second is not None
        assert not await first.refresh()  # no longer ours
        await first.release()  # a stale release does not free the new holder's lock
        assert await locks.acquire("as_1", wait=0) is None
        await second.release()
        await other.release()
    finally:
        await locks.close()
