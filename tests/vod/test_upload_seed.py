"""The seed's upload form (Tus-Resumable 2.0.0) and when an upload counts as complete."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

from tests.vod.uploadkit import OCTETS, SEED, asset, make_clip, new_upload, upload_api


async def _send(client, url: str, data: bytes, chunk: int) -> int:  # type: ignore[no-untyped-def]
    r = await client.head(url, headers=SEED)
    offset = int(r.headers["upload-offset"])
    while offset < len(data):
        end = min(offset + chunk, len(data))
        r = await client.patch(
            url, content=data[offset:end], headers={**SEED, **OCTETS, "upload-offset": str(offset)}
        )
        assert r.status_code == 204, r.text
        offset = int(r.headers["upload-offset"])
    return offset


async def test_whole_mp4_completes_after_idle_and_is_submitted(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    async with upload_api(tmp_path) as (api, queue):
        created = await new_upload(api, maxDurationSeconds=30)
        url, aid = created["uploadUrl"], created["assetId"]
        assert await _send(api.client, url, clip, 7000) == len(clip)
        job = await queue.wait()
        assert job.asset_id == aid and job.playback_id == created["playbackId"]
        assert job.namespace == f"stream/{api.org_id}/{created['playbackId']}"
        assert job.max_duration_s == 30
        assert job.output == tmp_path / "data" / "assets" / aid
        assert hashlib.sha256(job.source.read_bytes()).digest() == hashlib.sha256(clip).digest()
        got = await asset(api, aid)
        assert got["status"] == "processing" and got["size"] == len(clip)
        # HEAD after completion still answers the offset; nothing more can be appended.
        r = await api.client.head(url, headers=SEED)
        assert r.status_code == 200 and int(r.headers["upload-offset"]) == len(clip)
        r = await api.client.patch(
            url, content=b"more", headers={**SEED, **OCTETS, "upload-offset": str(len(clip))}
        )
        assert r.status_code == 409 and r.json()["offset"] == len(clip)
        assert len(queue.jobs) == 1


async def test_half_sent_file_is_never_packaged(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    async with upload_api(tmp_path, upload_idle_seconds=0.2) as (api, queue):
        created = await new_upload(api)
        url, aid = created["uploadUrl"], created["assetId"]
        half = len(clip) // 2
        r = await api.client.patch(
            url, content=clip[:half], headers={**SEED, **OCTETS, "upload-offset": "0"}
        )
        assert r.status_code == 204 and int(r.headers["upload-offset"]) == half
        await api.app.state.uploads.sweep()
        await asyncio.sleep(0.6)  # three idle periods: a whole file would have completed
        await api.app.state.uploads.sweep()
        got = await asset(api, aid)
        assert got["status"] == "uploading" and got["progress"] is None
        assert queue.jobs == []
        # The rest arrives later: now it completes.
        r = await api.client.patch(
            url, content=clip[half:], headers={**SEED, **OCTETS, "upload-offset": str(half)}
        )
        assert r.status_code == 204
        await queue.wait()
        assert (await asset(api, aid))["status"] == "processing"


async def test_known_size_completes_at_the_offset_with_progress(tmp_path: Path) -> None:
    async with upload_api(tmp_path) as (api, queue):
        created = await new_upload(api, size=1000)
        url, aid = created["uploadUrl"], created["assetId"]
        r = await api.client.head(url, headers=SEED)
        assert r.headers["upload-length"] == "1000" and r.headers["upload-offset"] == "0"
        r = await api.client.patch(
            url, content=b"a" * 250, headers={**SEED, **OCTETS, "upload-offset": "0"}
        )
        assert r.headers["upload-offset"] == "250"
        got = await asset(api, aid)
        assert got["status"] == "uploading" and got["progress"] == 25.0
        # Over the declared length: 413, and nothing is lost.
        r = await api.client.patch(
            url, content=b"b" * 751, headers={**SEED, **OCTETS, "upload-offset": "250"}
        )
        assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
        assert (await api.client.head(url, headers=SEED)).headers["upload-offset"] == "250"
        r = await api.client.patch(
            url, content=b"b" * 750, headers={**SEED, **OCTETS, "upload-offset": "250"}
        )
        assert r.status_code == 204 and r.headers["upload-offset"] == "1000"
        job = await queue.wait(within=2)  # no idle wait: the length is known
        assert job.source.read_bytes() == b"a" * 250 + b"b" * 750


async def test_upload_length_on_any_request_binds_the_length(tmp_path: Path) -> None:
    async with upload_api(tmp_path) as (api, queue):
        created = await new_upload(api)
        url = created["uploadUrl"]
        r = await api.client.patch(
            url,
            content=b"x" * 10,
            headers={**SEED, **OCTETS, "upload-offset": "0", "upload-length": "20"},
        )
        assert r.status_code == 204 and r.headers["upload-length"] == "20"
        r = await api.client.patch(
            url,
            content=b"y" * 10,
            headers={**SEED, **OCTETS, "upload-offset": "10", "upload-length": "21"},
        )
        assert r.status_code == 400 and r.json()["type"].endswith("inconsistent-upload-length")
        r = await api.client.patch(
            url, content=b"y" * 10, headers={**SEED, **OCTETS, "upload-offset": "10"}
        )
        assert r.status_code == 204
        await queue.wait(within=2)


async def test_versions_and_bad_headers_are_problems(tmp_path: Path) -> None:
    async with upload_api(tmp_path) as (api, _queue):
        url = (await new_upload(api))["uploadUrl"]
        for version in ("3.0.0", "0.2.2"):
            r = await api.client.head(url, headers={"tus-resumable": version})
            assert r.status_code == 412 and r.headers["tus-version"] == "1.0.0,2.0.0"
        r = await api.client.patch(url, content=b"x", headers={**OCTETS, "upload-offset": "0"})
        assert r.status_code == 412 and r.headers["content-type"] == "application/problem+json"
        for bad in ("-1", "abc", ""):
            r = await api.client.patch(
                url, content=b"x", headers={**SEED, **OCTETS, "upload-offset": bad}
            )
            assert r.status_code == 400, bad
        r = await api.client.patch(
            url, content=b"x", headers={**SEED, "content-type": "text/plain", "upload-offset": "0"}
        )
        assert r.status_code == 415
        wrong = url[:-1] + ("A" if url[-1] != "A" else "B")
        assert (await api.client.head(wrong, headers=SEED)).status_code == 404
        r = await api.client.patch(
            wrong, content=b"x", headers={**SEED, **OCTETS, "upload-offset": "0"}
        )
        assert r.status_code == 404 and r.json()["status"] == 404
        r = await api.client.head(url, headers=SEED)
        assert r.headers["upload-offset"] == "0"  # nothing was written by any of them


async def test_streamed_body_over_the_limit_is_413_and_dropped(tmp_path: Path) -> None:
    """Without Content-Length (chunked) the limit is enforced while the bytes arrive."""

    async def body() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"c" * 50

    async with upload_api(tmp_path, max_upload_bytes=120) as (api, queue):
        created = await new_upload(api)
        url = created["uploadUrl"]
        r = await api.client.patch(
            url, content=b"a" * 20, headers={**SEED, **OCTETS, "upload-offset": "0"}
        )
        assert r.status_code == 204
        r = await api.client.patch(
            url, content=body(), headers={**SEED, **OCTETS, "upload-offset": "20"}
        )
        assert r.status_code == 413 and r.json()["status"] == 413
        r = await api.client.head(url, headers=SEED)
        assert r.headers["upload-offset"] == "20"
        stored = tmp_path / "data" / "uploads" / f"{created['assetId']}.bin"
        assert stored.read_bytes() == b"a" * 20
        assert queue.jobs == []
