"""IETF resumable uploads (draft interop versions 6, 7 and 8) on the upload URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vod.uploadkit import asset, new_upload, upload_api

PART = "application/partial-upload"


@pytest.mark.parametrize("version", ["6", "7", "8"])
async def test_request_sequence(tmp_path: Path, version: str) -> None:
    v = {"Upload-Draft-Interop-Version": version}
    data = bytes(range(256)) * 40  # 10240 bytes
    async with upload_api(tmp_path) as (api, queue):
        # Creation with an API key and the first part.
        r = await api.client.post(
            "/v1/uploads",
            content=data[:3000],
            headers={**api.auth(), **v, "Upload-Complete": "?0", "Content-Type": PART},
        )
        assert r.status_code == 201, r.text
        location = r.headers["location"]
        assert "/v1/uploads/up_" in location
        assert r.headers["upload-complete"] == "?0" and r.headers["upload-offset"] == "3000"
        limit = r.headers["upload-limit"]
        assert "max-size=" in limit
        assert ("expires=" if version == "6" else "max-age=") in limit

        # Offset retrieval (no key: the URL is the capability).
        r = await api.client.head(location, headers=v)
        assert r.status_code == 204
        assert r.headers["upload-offset"] == "3000" and r.headers["upload-complete"] == "?0"
        assert r.headers["cache-control"] == "no-store" and "max-size=" in r.headers["upload-limit"]

        # A wrong offset: 409 with the right one, nothing appended.
        r = await api.client.patch(
            location,
            content=data[3000:4000],
            headers={**v, "Upload-Offset": "2000", "Upload-Complete": "?0", "Content-Type": PART},
        )
        assert r.status_code == 409
        assert r.headers["upload-offset"] == "3000" and r.headers["upload-complete"] == "?0"
        body = r.json()
        assert body["type"].endswith("#mismatching-upload-offset")
        assert body["expected-offset"] == 3000 and body["provided-offset"] == 2000

        # Appending: version 6 takes any content type, 7 and 8 want partial-upload.
        ctype = "application/octet-stream" if version == "6" else PART
        if version != "6":
            r = await api.client.patch(
                location,
                content=data[3000:6000],
                headers={
                    **v,
                    "Upload-Offset": "3000",
                    "Upload-Complete": "?0",
                    "Content-Type": "application/octet-stream",
                },
            )
            assert r.status_code == 415
        r = await api.client.patch(
            location,
            content=data[3000:6000],
            headers={**v, "Upload-Offset": "3000", "Upload-Complete": "?0", "Content-Type": ctype},
        )
        assert r.status_code == 204 and r.headers["upload-complete"] == "?0"
        assert r.headers["upload-offset"] == "6000"
        assert queue.jobs == []

        # The last part completes it (length = offset + Content-Length).
        r = await api.client.patch(
            location,
            content=data[6000:],
            headers={**v, "Upload-Offset": "6000", "Upload-Complete": "?1", "Content-Type": ctype},
        )
        assert r.status_code == 200, r.text
        assert r.headers["upload-complete"] == "?1"
        assert r.json()["assetId"].startswith("as_")
        job = await queue.wait(within=2)
        assert job.source.read_bytes() == data
        r = await api.client.head(location, headers=v)
        assert r.headers["upload-complete"] == "?1" and r.headers["upload-length"] == str(len(data))
        assert (await asset(api, job.asset_id))["status"] == "processing"

        # Cancellation of another upload: its bytes go, the URL is gone.
        r = await api.client.post(
            "/v1/uploads",
            content=b"z" * 100,
            headers={**api.auth(), **v, "Upload-Complete": "?0", "Content-Type": PART},
        )
        other = r.headers["location"]
        aid = (await api.client.get("/v1/assets", headers=api.auth())).json()["data"][0]["id"]
        stored = tmp_path / "data" / "uploads" / f"{aid}.bin"
        assert stored.stat().st_size == 100
        assert (await api.client.delete(other, headers=v)).status_code == 204
        assert not stored.exists()
        assert (await api.client.head(other, headers=v)).status_code == 404
        r = await api.client.get(f"/v1/assets/{aid}", headers=api.auth())
        assert r.status_code == 404


@pytest.mark.parametrize("version", ["6", "8"])
async def test_creation_on_an_upload_url_and_in_one_request(tmp_path: Path, version: str) -> None:
    v = {"Upload-Draft-Interop-Version": version}
    async with upload_api(tmp_path) as (api, queue):
        created = await new_upload(api)
        url = created["uploadUrl"]
        r = await api.client.post(
            url, content=b"q" * 500, headers={**v, "Upload-Complete": "?1", "Content-Type": PART}
        )
        assert r.status_code == 201 and r.headers["upload-complete"] == "?1"
        assert r.headers["location"] == url
        job = await queue.wait(within=2)
        assert job.asset_id == created["assetId"] and job.source.read_bytes() == b"q" * 500


async def test_upload_length_limits_and_versions(tmp_path: Path) -> None:
    v = {"Upload-Draft-Interop-Version": "8"}
    async with upload_api(tmp_path, max_upload_bytes=1000) as (api, _queue):
        r = await api.client.options("/v1/uploads", headers=v)
        assert r.status_code == 204 and r.headers["upload-limit"] == "max-size=1000, min-size=0"
        r = await api.client.post(
            "/v1/uploads",
            headers={**api.auth(), **v, "Upload-Complete": "?0", "Upload-Length": "1001"},
        )
        assert r.status_code == 413 and r.json()["status"] == 413
        assert (await api.client.get("/v1/assets", headers=api.auth())).json()["data"] == []
        r = await api.client.post(
            "/v1/uploads",
            headers={**api.auth(), **v, "Upload-Complete": "?0", "Upload-Length": "100"},
        )
        location = r.headers["location"]
        r = await api.client.patch(
            location,
            content=b"x" * 101,
            headers={**v, "Upload-Offset": "0", "Upload-Complete": "?0", "Content-Type": PART},
        )
        assert r.status_code == 413
        assert (await api.client.head(location, headers=v)).headers["upload-offset"] == "0"
        r = await api.client.head(location, headers={"Upload-Draft-Interop-Version": "5"})
        assert r.status_code == 400
        r = await api.client.patch(
            location, content=b"x", headers={**v, "Upload-Offset": "0", "Content-Type": PART}
        )
        assert r.status_code == 400  # Upload-Complete is required
        r = await api.client.post("/v1/uploads", headers={**v, "Upload-Complete": "?0"})
        assert r.status_code == 401
