"""streams.assets against the real control plane (uvicorn, real HTTP), through a proxy
that cuts the first upload connection in the middle of its body."""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path

import pytest

from clutchcall.streams import (
    ApiError,
    AssetFailed,
    AsyncStreams,
    ConfigurationError,
    ConnectionFailed,
    NotFound,
    Streams,
    UploadFailed,
    UploadPolicy,
)
from clutchcall.streams._assets import Asset
from clutchcall.streams._assets_aio import AsyncAsset
from tests.vod.servekit import CutProxy, Served, served

pytestmark = pytest.mark.timeout(120)

MiB = 1 << 20


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def stored(srv: Served, asset_id: str) -> bytes:
    return srv.service.storage.upload_path(asset_id).read_bytes()


def progress_log() -> tuple[list[tuple[int, int]], object]:
    seen: list[tuple[int, int]] = []
    return seen, lambda sent, total: seen.append((sent, total))


async def test_sync_upload_resumes_after_a_cut_connection(tmp_path: Path) -> None:
    source = random_file(tmp_path / "talk.mp4", 3 * MiB + 123)
    async with served(tmp_path) as srv:
        port = int(srv.base_url.rsplit(":", 1)[1])
        async with CutProxy(port, cut_after=MiB) as proxy:
            base = f"http://127.0.0.1:{proxy.port}"
            seen, on_progress = progress_log()

            def run() -> Asset:
                with Streams(base_url=base, api_key=srv.api_key) as streams:
                    streams.assets.policy = UploadPolicy(base=0.05)
                    return streams.assets.upload(source, name="Talk", on_progress=on_progress)

            asset = await asyncio.to_thread(run)
        assert proxy.cuts == 1
        assert asset.name == "Talk" and asset.id.startswith("as_")
        assert asset.playback_id.startswith("pb_")
        assert asset.status in ("processing", "ready") and asset.size == source.stat().st_size
        assert stored(srv, asset.id) == source.read_bytes()
        job = await srv.queue.wait()
        assert job.asset_id == asset.id
        total = source.stat().st_size
        assert seen[-1] == (total, total) and all(t == total for _, t in seen)
        # After the cut it went back to the server's offset (less than what was sent).
        sent = [s for s, _ in seen]
        assert any(b < a for a, b in itertools.pairwise(sent)), sent[:20]


async def test_async_upload_resumes_after_a_cut_connection(tmp_path: Path) -> None:
    source = random_file(tmp_path / "clip.mp4", 2 * MiB + 7)
    async with served(tmp_path) as srv:
        port = int(srv.base_url.rsplit(":", 1)[1])
        async with CutProxy(port, cut_after=700_000) as proxy:
            seen, on_progress = progress_log()
            async with AsyncStreams(
                base_url=f"http://127.0.0.1:{proxy.port}", api_key=srv.api_key
            ) as streams:
                streams.assets.policy = UploadPolicy(base=0.05, chunk_size=512 * 1024)
                asset = await streams.assets.upload(source, on_progress=on_progress)
                assert isinstance(asset, AsyncAsset) and asset.name == "clip.mp4"
                again = await asset.refresh()
                assert again.id == asset.id
        assert proxy.cuts == 1
        assert stored(srv, asset.id) == source.read_bytes()
        assert seen[-1][0] == source.stat().st_size


async def test_create_upload_get_list_delete_and_wait(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:

        def run() -> None:
            with Streams(base_url=srv.base_url, api_key=srv.api_key) as streams:
                ticket = streams.assets.create_upload(name="Session-Recording.mp4")
                # The seed's names and ours.
                assert (
                    ticket.uploadUrl == ticket.upload_url and "/v1/uploads/up_" in ticket.uploadUrl
                )
                assert ticket.assetId == ticket.asset_id == ticket.asset.id
                assert ticket.playbackId == ticket.asset.playback_id
                upload_url, asset_id = ticket
                assert "up_" not in repr(ticket)  # the capability stays out of logs
                assert ticket.asset.status == "waiting_upload"
                got = streams.assets.get(asset_id)
                assert got.name == "Session-Recording.mp4" and got.require_signed_urls is False
                assert got.playback_url is not None and got.playback_id in got.playback_url
                second = streams.assets.createUpload(name="b", meta={"k": "v"}, size=10)
                page = streams.assets.list(limit=1)
                assert [a.id for a in page] == [second.asset_id] and page.next_cursor
                assert [a.id for a in streams.assets.iter_all(page_size=1)] == [
                    second.asset_id,
                    asset_id,
                ]
                with pytest.raises(TimeoutError):
                    streams.assets.wait_ready(asset_id, timeout=0.3, poll=0.1)
                ticket2 = streams.assets.signed_playback_url(asset_id, ttl_seconds=120)
                assert ticket2.sub == got.playback_id
                assert f"/vod/{got.playback_id}/catalog.json?token=" in ticket2.url
                streams.assets.delete(asset_id)
                with pytest.raises(NotFound):
                    streams.assets.get(asset_id)
                with pytest.raises(NotFound):
                    streams.assets.delete(asset_id)
                assert upload_url

        await asyncio.to_thread(run)


async def test_wait_ready_raises_when_errored(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        async with AsyncStreams(base_url=srv.base_url, api_key=srv.api_key) as streams:
            ticket = await streams.assets.create_upload(name="x")
            waiter = asyncio.ensure_future(streams.assets.wait_ready(ticket.asset_id, poll=0.05))
            await asyncio.sleep(0.2)
            assert not waiter.done()
            await srv.service.asset_errored(ticket.asset_id, "not_media", "no video stream")
            with pytest.raises(AssetFailed) as info:
                await waiter
            assert info.value.code == "not_media" and info.value.asset_id == ticket.asset_id


async def test_upload_file_continues_a_started_upload(tmp_path: Path) -> None:
    source = random_file(tmp_path / "a.bin", MiB)
    data = source.read_bytes()
    async with served(tmp_path) as srv:
        created = await srv.new_upload(size=len(data))
        url = created["uploadUrl"]
        r = await srv.client.patch(
            url,
            content=data[:300_000],
            headers={
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert r.status_code == 204, r.text
        async with AsyncStreams(base_url=srv.base_url, api_key=srv.api_key) as streams:
            seen, on_progress = progress_log()
            done = await streams.assets.upload_file(url, source, on_progress=on_progress)
        assert done == len(data)
        assert seen[0] == (300_000, len(data))  # resumed from the server's offset
        assert stored(srv, created["assetId"]) == data
        # A file of another length than the upload's is refused before sending.
        other = random_file(tmp_path / "b.bin", 1000)
        async with AsyncStreams(base_url=srv.base_url, api_key=srv.api_key) as streams:
            with pytest.raises(UploadFailed, match="expects"):
                created2 = await srv.new_upload(size=5000)
                await streams.assets.upload_file(created2["uploadUrl"], other)


async def test_upload_errors_are_typed(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        async with AsyncStreams(base_url=srv.base_url, api_key=srv.api_key) as streams:
            with pytest.raises(ConfigurationError, match="cannot read"):
                await streams.assets.upload(tmp_path / "missing.mp4")
            empty = tmp_path / "empty.mp4"
            empty.write_bytes(b"")
            with pytest.raises(ConfigurationError, match="empty"):
                await streams.assets.upload(empty)
            source = random_file(tmp_path / "c.bin", 1000)
            with pytest.raises(ApiError) as info:  # not a capability: not retried
                await streams.assets.upload_file(f"{srv.base_url}/v1/uploads/up_{'A' * 43}", source)
            assert info.value.status in (404, 410)
    # Nothing listens any more: retried, then a typed error.
    async with AsyncStreams(base_url=srv.base_url, api_key="ck_x") as streams:
        streams.assets.policy = UploadPolicy(retries=2, base=0.01)
        with pytest.raises((UploadFailed, ConnectionFailed)):
            await streams.assets.upload_file(f"{srv.base_url}/v1/uploads/up_x", source)
