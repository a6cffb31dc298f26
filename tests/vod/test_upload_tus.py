"""tus 1.0.0 on the upload URL: discovery, creation (+ with upload, deferred length),
termination, expiration and checksums."""

from __future__ import annotations

import base64
import hashlib
from email.utils import parsedate_to_datetime
from pathlib import Path

from tests.vod.uploadkit import OCTETS, asset, new_upload, upload_api

TUS = {"Tus-Resumable": "1.0.0"}


def _meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def _sum(algo: str, data: bytes) -> str:
    return f"{algo} {base64.b64encode(hashlib.new(algo, data).digest()).decode()}"


async def test_options_discovery(tmp_path: Path) -> None:
    async with upload_api(tmp_path, max_upload_bytes=5000) as (api, _queue):
        url = (await new_upload(api))["uploadUrl"]
        for target in ("/v1/uploads", url):
            r = await api.client.options(target)
            assert r.status_code == 204
            assert r.headers["tus-version"] == "1.0.0,2.0.0"
            assert r.headers["tus-max-size"] == "5000"
            assert r.headers["tus-checksum-algorithm"] == "sha1,sha256"
            assert set(r.headers["tus-extension"].split(",")) == {
                "creation",
                "creation-with-upload",
                "creation-defer-length",
                "termination",
                "expiration",
                "checksum",
            }


async def test_creation_with_upload_and_expiration(tmp_path: Path) -> None:
    async with upload_api(tmp_path) as (api, queue):
        r = await api.client.post(
            "/v1/uploads",
            content=b"a" * 40,
            headers={
                **api.auth(),
                **TUS,
                **OCTETS,
                "Upload-Length": "100",
                "Upload-Metadata": _meta(filename="talk.mp4", kind="x"),
            },
        )
        assert r.status_code == 201, r.text
        location = r.headers["location"]
        assert r.headers["upload-offset"] == "40" and r.headers["tus-resumable"] == "1.0.0"
        expires = parsedate_to_datetime(r.headers["upload-expires"])
        r = await api.client.head(location, headers=TUS)
        assert r.status_code == 200
        assert r.headers["upload-offset"] == "40" and r.headers["upload-length"] == "100"
        assert r.headers["cache-control"] == "no-store"
        assert parsedate_to_datetime(r.headers["upload-expires"]) == expires
        assets = (await api.client.get("/v1/assets", headers=api.auth())).json()["data"]
        assert assets[0]["name"] == "talk.mp4" and assets[0]["progress"] == 40.0
        r = await api.client.patch(
            location, content=b"b" * 60, headers={**TUS, **OCTETS, "Upload-Offset": "40"}
        )
        assert r.status_code == 204 and r.headers["upload-offset"] == "100"
        job = await queue.wait(within=2)
        assert job.source.read_bytes() == b"a" * 40 + b"b" * 60


async def test_post_to_upload_url_binds_the_length_and_defer_length(tmp_path: Path) -> None:
    async with upload_api(tmp_path) as (api, queue):
        created = await new_upload(api)
        url = created["uploadUrl"]
        r = await api.client.post(url, headers={**TUS, "Upload-Defer-Length": "1"})
        assert r.status_code == 201 and r.headers["location"] == url
        assert r.headers["upload-defer-length"] == "1"
        r = await api.client.patch(
            url, content=b"x" * 10, headers={**TUS, **OCTETS, "Upload-Offset": "0"}
        )
        assert r.status_code == 204
        r = await api.client.patch(
            url,
            content=b"y" * 10,
            headers={**TUS, **OCTETS, "Upload-Offset": "10", "Upload-Length": "20"},
        )
        assert r.status_code == 204 and r.headers["upload-length"] == "20"
        await queue.wait(within=2)
        # Creation needs a length (or a deferral).
        other = (await new_upload(api))["uploadUrl"]
        r = await api.client.post(other, headers=TUS)
        assert r.status_code == 400 and r.headers["tus-resumable"] == "1.0.0"


async def test_checksums(tmp_path: Path) -> None:
    async with upload_api(tmp_path) as (api, _queue):
        created = await new_upload(api)
        url = created["uploadUrl"]
        h = {**TUS, **OCTETS}
        r = await api.client.patch(
            url,
            content=b"1" * 10,
            headers={**h, "Upload-Offset": "0", "Upload-Checksum": _sum("sha1", b"1" * 10)},
        )
        assert r.status_code == 204 and r.headers["upload-offset"] == "10"
        r = await api.client.patch(
            url,
            content=b"2" * 10,
            headers={**h, "Upload-Offset": "10", "Upload-Checksum": _sum("sha256", b"X" * 10)},
        )
        assert r.status_code == 460 and r.json()["status"] == 460
        assert r.headers["upload-offset"] == "10"
        r = await api.client.head(url, headers=TUS)
        assert r.headers["upload-offset"] == "10"  # the mismatching body was dropped
        r = await api.client.patch(
            url,
            content=b"2" * 10,
            headers={**h, "Upload-Offset": "10", "Upload-Checksum": "md5 AAAA"},
        )
        assert r.status_code == 400
        r = await api.client.patch(
            url,
            content=b"2" * 10,
            headers={**h, "Upload-Offset": "10", "Upload-Checksum": _sum("sha256", b"2" * 10)},
        )
        assert r.status_code == 204 and r.headers["upload-offset"] == "20"
        stored = tmp_path / "data" / "uploads" / f"{created['assetId']}.bin"
        assert stored.read_bytes() == b"1" * 10 + b"2" * 10


async def test_termination(tmp_path: Path) -> None:
    async with upload_api(tmp_path) as (api, _queue):
        created = await new_upload(api)
        url = created["uploadUrl"]
        await api.client.patch(
            url, content=b"x" * 10, headers={**TUS, **OCTETS, "Upload-Offset": "0"}
        )
        r = await api.client.delete(url, headers=TUS)
        assert r.status_code == 204 and r.headers["tus-resumable"] == "1.0.0"
        assert (await api.client.head(url, headers=TUS)).status_code == 404
        r = await api.client.get(f"/v1/assets/{created['assetId']}", headers=api.auth())
        assert r.status_code == 404
        assert not (tmp_path / "data" / "uploads" / f"{created['assetId']}.bin").exists()


async def test_expired_upload_is_410_and_its_bytes_are_removed(tmp_path: Path) -> None:
    async with upload_api(tmp_path) as (api, _queue):
        created = await new_upload(api, expiresInSeconds=60)
        url, aid = created["uploadUrl"], created["assetId"]
        await api.client.patch(
            url, content=b"x" * 10, headers={**TUS, **OCTETS, "Upload-Offset": "0"}
        )
        stored = tmp_path / "data" / "uploads" / f"{aid}.bin"
        assert stored.exists()
        # Time passes (the service's clock), the upload expires.
        later = api.service._clock() + 61
        api.service._clock = lambda: later
        api.app.state.uploads._clock = lambda: later
        r = await api.client.patch(
            url, content=b"y", headers={**TUS, **OCTETS, "Upload-Offset": "10"}
        )
        assert r.status_code == 410 and r.json()["status"] == 410
        assert not stored.exists()
        got = await asset(api, aid)
        assert got["status"] == "errored" and got["error"]["code"] == "upload_expired"
        assert (await api.client.head(url, headers=TUS)).status_code == 410
