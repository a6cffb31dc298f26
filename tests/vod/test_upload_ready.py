"""Through the real packaging queue: an uploaded ffmpeg clip reaches ``ready`` (and the
``asset.ready`` event), and assets get signed playback URLs like live inputs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.vod.servekit import served
from tests.vod.uploadkit import OCTETS, SEED, make_clip

pytestmark = pytest.mark.e2e


async def test_uploaded_clip_reaches_ready(tmp_path: Path) -> None:
    clip = await asyncio.to_thread(make_clip, tmp_path / "clip.mp4", 2.0)
    async with served(tmp_path, record=False) as srv:
        events: asyncio.Queue[tuple[str, str, dict[str, Any]]] = asyncio.Queue()

        async def sink(org_id: str, event: str, data: dict[str, Any]) -> None:
            await events.put((org_id, event, data))

        srv.service.event_sinks.append(sink)
        created = await srv.new_upload(requireSignedUrls=True)
        url, aid = created["uploadUrl"], created["assetId"]
        offset = 0
        while offset < len(clip):
            r = await srv.client.patch(
                url,
                content=clip[offset : offset + 100_000],
                headers={**SEED, **OCTETS, "upload-offset": str(offset)},
            )
            assert r.status_code == 204, r.text
            offset = int(r.headers["upload-offset"])
        _org, event, data = await asyncio.wait_for(events.get(), 120)
        assert event == "asset.ready", data
        assert data["id"] == aid and data["status"] == "ready"
        got = await srv.asset(aid)
        assert got["status"] == "ready" and got["progress"] == 100.0
        assert got["duration"] == pytest.approx(2.0, abs=0.3)
        assert got["size"] == len(clip) and got["ready_at"] is not None
        assert got["renditions"] and all(r["bitrate"] > 0 for r in got["renditions"])
        assert got["playback_url"] is None  # signed URLs required
        out = Path(srv.service.settings.data_dir) / "assets" / aid
        assert (out / "catalog.json").is_file()
        loc = await srv.service.vod_location(created["playbackId"])
        assert loc is not None and loc.dir == out and loc.require_signed

        # Signed playback URL: sub = pb_ id, the live ticket path, revocable.
        r = await srv.client.post(
            f"{srv.base_url}/v1/assets/{aid}/playback_urls",
            json={"ttl_seconds": 600},
            headers=srv.auth(),
        )
        assert r.status_code == 201, r.text
        ticket = r.json()
        pb = created["playbackId"]
        assert ticket["sub"] == pb
        assert ticket["url"] == f"{srv.base_url}/vod/{pb}/catalog.json?token={ticket['token']}"
        claims = jwt.decode(ticket["token"], options={"verify_signature": False})
        assert claims["sub"] == pb and claims["jti"] == ticket["jti"]
        r = await srv.client.post(
            f"{srv.base_url}/v1/assets/{aid}/revoke_playback", headers=srv.auth()
        )
        assert r.status_code == 200 and r.json()["sub"] == pb


async def test_not_media_is_errored(tmp_path: Path) -> None:
    async with served(tmp_path, record=False) as srv:
        events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

        async def sink(_org: str, event: str, data: dict[str, Any]) -> None:
            await events.put((event, data))

        srv.service.event_sinks.append(sink)
        created = await srv.new_upload(size=4000)
        r = await srv.client.patch(
            created["uploadUrl"],
            content=(b"not a video " * 400)[:4000],
            headers={**SEED, **OCTETS, "upload-offset": "0"},
        )
        assert r.status_code == 204 and r.headers["upload-offset"] == "4000"
        event, data = await asyncio.wait_for(events.get(), 60)
        assert event == "asset.errored" and data["error"]["code"] == "not_media"
        got = await srv.asset(created["assetId"])
        assert got["status"] == "errored" and got["error"]["code"] == "not_media"
