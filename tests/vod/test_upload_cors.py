"""The upload URL from a browser: CORS for the configured origins, every protocol header
exposed; and the sweeper expires abandoned uploads without any request."""

from __future__ import annotations

from pathlib import Path

from tests.vod.uploadkit import OCTETS, SEED, asset, new_upload, upload_api

ORIGIN = "http://app.example:5173"


async def test_cors_for_configured_origins(tmp_path: Path) -> None:
    async with upload_api(tmp_path, cors_origins=(ORIGIN,)) as (api, _queue):
        url = (await new_upload(api))["uploadUrl"]
        r = await api.client.options(
            url,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "tus-resumable,upload-offset,content-type",
            },
        )
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == ORIGIN
        assert "PATCH" in r.headers["access-control-allow-methods"]
        r = await api.client.patch(
            url,
            content=b"x" * 10,
            headers={**SEED, **OCTETS, "upload-offset": "0", "Origin": ORIGIN},
        )
        assert r.status_code == 204 and r.headers["access-control-allow-origin"] == ORIGIN
        exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
        assert {"upload-offset", "upload-length", "tus-resumable", "upload-complete",
                "upload-limit", "upload-expires", "location"} <= exposed  # fmt: skip
        # No API key was needed, and another origin is not allowed.
        r = await api.client.head(url, headers={**SEED, "Origin": "http://evil.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


async def test_sweeper_expires_abandoned_uploads(tmp_path: Path) -> None:
    async with upload_api(tmp_path) as (api, queue):
        created = await new_upload(api, expiresInSeconds=60)
        url, aid = created["uploadUrl"], created["assetId"]
        r = await api.client.patch(
            url, content=b"x" * 10, headers={**SEED, **OCTETS, "upload-offset": "0"}
        )
        assert r.status_code == 204
        stored = tmp_path / "data" / "uploads" / f"{aid}.bin"
        assert stored.exists()
        later = api.service._clock() + 61
        api.service._clock = lambda: later
        api.app.state.uploads._clock = lambda: later
        await api.app.state.uploads.sweep()
        assert not stored.exists()
        got = await asset(api, aid)
        assert got["status"] == "errored" and got["error"]["code"] == "upload_expired"
        assert queue.jobs == []
