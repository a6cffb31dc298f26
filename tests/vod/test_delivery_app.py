"""``/vod/`` on the real control plane: upload -> packaging queue -> ready -> HLS over HTTP,
with the control plane's own keys and revocations (docs/vod.md, "Delivery over HTTPS")."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from control.app import create_app
from control.settings import ControlSettings
from media.catalog import Catalog
from mesh.bus import MemoryBus
from tests.vod.servekit import Served, served
from tests.vod.uploadkit import OCTETS, SEED, make_clip

from ._clips import decode_playlist, ffprobe

pytestmark = pytest.mark.e2e


async def _ready_asset(srv: Served, clip: bytes, **body: Any) -> dict[str, Any]:
    events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    async def sink(_org: str, event: str, data: dict[str, Any]) -> None:
        await events.put((event, data))

    srv.service.event_sinks.append(sink)
    created = await srv.new_upload(size=len(clip), **body)
    r = await srv.client.patch(
        created["uploadUrl"], content=clip, headers={**SEED, **OCTETS, "upload-offset": "0"}
    )
    assert r.status_code == 204, r.text
    while True:
        event, data = await asyncio.wait_for(events.get(), 120)
        if data["id"] == created["assetId"] and event in ("asset.ready", "asset.errored"):
            break
    srv.service.event_sinks.remove(sink)
    assert event == "asset.ready", data
    return created


async def _ticket(srv: Served, asset_id: str) -> dict[str, Any]:
    r = await srv.client.post(
        f"{srv.base_url}/v1/assets/{asset_id}/playback_urls",
        json={"ttl_seconds": 600},
        headers=srv.auth(),
    )
    assert r.status_code == 201, r.text
    ticket: dict[str, Any] = r.json()
    return ticket


async def test_uploaded_assets_play_over_http_public_and_signed(tmp_path: Path) -> None:
    clip = await asyncio.to_thread(make_clip, tmp_path / "clip.mp4", 3.0)
    async with served(tmp_path, record=False) as srv:
        public = await _ready_asset(srv, clip)
        signed = await _ready_asset(srv, clip, requireSignedUrls=True)
        c, base = srv.client, srv.base_url

        # public: the asset's playback_url is the catalog, readable by the live parser
        url = (await srv.asset(public["assetId"]))["playback_url"]
        assert url == f"{base}/vod/{public['playbackId']}/catalog.json"
        r = await c.get(url)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
        catalog = Catalog.parse(r.content)
        assert all(t.is_live is False and t.timeline for t in catalog.tracks)
        played = await asyncio.to_thread(
            decode_playlist, f"{base}/vod/{public['playbackId']}/master.m3u8"
        )
        assert played.returncode == 0, played.stderr[-2000:]
        assert re.findall(r"frame=\s*(\d+)", played.stderr)[-1] == "75"  # 3 s at 25 fps
        # an independent reader: ffprobe sees the master's variants, video and audio, 3 s long
        probed = await asyncio.to_thread(ffprobe, f"{base}/vod/{public['playbackId']}/master.m3u8")
        assert probed["format"]["format_name"] == "hls"
        kinds = {s["codec_type"] for s in probed["streams"]}
        assert kinds == {"video", "audio"}, probed["streams"]
        assert float(probed["format"]["duration"]) == pytest.approx(3.0, abs=0.2)

        # signed: the minted URL works, and the playlist carries its token to ffmpeg
        pb = signed["playbackId"]
        ticket = await _ticket(srv, signed["assetId"])
        assert (await c.get(ticket["url"])).status_code == 200
        master = f"{base}/vod/{pb}/master.m3u8?token={ticket['token']}"
        played = await asyncio.to_thread(decode_playlist, master)
        assert played.returncode == 0, played.stderr[-2000:]
        no_token = await c.get(f"{base}/vod/{pb}/catalog.json")
        assert no_token.status_code == 401 and no_token.json()["type"].endswith("auth_failed")
        # a ticket of another asset (even of the same org) is refused
        other = await _ticket(srv, public["assetId"])
        wrong = await c.get(f"{base}/vod/{pb}/catalog.json", params={"token": other["token"]})
        assert wrong.status_code == 403 and wrong.json()["type"].endswith("auth_failed")

        # revoke every token of the asset: refused from then on
        r = await c.post(
            f"{base}/v1/assets/{signed['assetId']}/revoke_playback", headers=srv.auth()
        )
        assert r.status_code == 200
        async with asyncio.timeout(10):
            while (await c.get(ticket["url"])).status_code != 403:  # noqa: ASYNC110 - via the bus
                await asyncio.sleep(0.05)
        segment = await c.get(f"{base}/vod/{pb}/audio/0.m4s", params={"token": ticket["token"]})
        assert segment.status_code == 403
        fresh = await _ticket(srv, signed["assetId"])
        assert (await c.get(fresh["url"])).status_code == 200

        # not ready / unknown / deleted: 404
        pending = await srv.new_upload()
        assert (await c.get(f"{base}/vod/{pending['playbackId']}/catalog.json")).status_code == 404
        r = await c.delete(f"{base}/v1/assets/{public['assetId']}", headers=srv.auth())
        assert r.status_code == 204
        assert (await c.get(url)).status_code == 404


async def test_vod_preflight_is_open_when_the_api_lists_its_origins(tmp_path: Path) -> None:
    app = create_app(
        ControlSettings(db=f"sqlite:///{tmp_path / 'c.db'}", data_dir=str(tmp_path / "data"),
                        cors_origins=("https://console.example",)),
        bus=MemoryBus(),
        background=False,
    )  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://control.test") as client:
        preflight = {
            "Origin": "https://player.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        }
        r = await client.options("/vod/pb_abc/master.m3u8", headers=preflight)
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == "*"
        assert "authorization" in r.headers["access-control-allow-headers"].lower()
        api = await client.options("/v1/assets", headers=preflight)
        assert api.status_code == 400  # the API itself keeps its list
    app.state.service.repo.close()
