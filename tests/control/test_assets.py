"""The assets API (docs/vod.md) on SQLite and PostgreSQL: create, get, list, delete, auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mesh.bus import Bus
from tests.control.conftest import Api, open_api
from tests.vod.uploadkit import OCTETS, SEED


@pytest.fixture
async def api(db_url: str, redis_bus: Bus, tmp_path: Path) -> AsyncIterator[Api]:
    async with open_api(db_url, redis_bus, data_dir=str(tmp_path / "data")) as a:
        try:
            yield a
        finally:
            await a.app.state.uploads.close()


async def _create(api: Api, **body: object) -> dict[str, object]:
    body.setdefault("name", "Session-Recording.mp4")
    r = await api.client.post("/v1/assets/uploads", json=body, headers=api.auth())
    assert r.status_code == 201, r.text
    data: dict[str, object] = r.json()
    return data


async def test_create_upload_answers_the_seed_shape(api: Api) -> None:
    data = await _create(api, meta={"project": "x"}, expiresInSeconds=600)
    assert set(data) == {"uploadUrl", "assetId", "playbackId", "expiresAt", "asset"}
    url = str(data["uploadUrl"])
    assert url.startswith("http://control.test/v1/uploads/up_")
    assert len(url.rsplit("/", 1)[1]) == 3 + 43
    asset = data["asset"]
    assert isinstance(asset, dict)
    assert asset["id"] == data["assetId"] and str(asset["id"]).startswith("as_")
    assert asset["playback_id"] == data["playbackId"] and str(data["playbackId"]).startswith("pb_")
    assert asset["status"] == "waiting_upload"
    assert asset["meta"] == {"project": "x"}
    assert asset["playback_url"] == f"http://control.test/vod/{data['playbackId']}/catalog.json"
    # The token itself is never stored, only its SHA-256.
    token = url.rsplit("/", 1)[1]
    with api.service.repo.driver.transaction() as tx:
        rows = tx.all("SELECT token_sha256 FROM uploads")
    assert rows and all(token not in str(r) for r in rows)


async def test_get_list_delete(api: Api, tmp_path: Path) -> None:
    ids = [str((await _create(api, name=f"a{i}"))["assetId"]) for i in range(3)]
    r = await api.client.get(f"/v1/assets/{ids[0]}", headers=api.auth())
    assert r.status_code == 200 and r.json()["name"] == "a0"
    page = (await api.client.get("/v1/assets?limit=2", headers=api.auth())).json()
    assert [a["id"] for a in page["data"]] == [ids[2], ids[1]]  # newest first
    rest = await api.client.get(
        f"/v1/assets?limit=2&cursor={page['next_cursor']}", headers=api.auth()
    )
    assert [a["id"] for a in rest.json()["data"]] == [ids[0]] and rest.json()["next_cursor"] is None

    # Delete removes the stored bytes.
    created = await _create(api, name="with bytes")
    url, aid = str(created["uploadUrl"]), str(created["assetId"])
    r = await api.client.patch(
        url, content=b"x" * 100, headers={**SEED, **OCTETS, "upload-offset": "0"}
    )
    assert r.status_code == 204
    stored = tmp_path / "data" / "uploads" / f"{aid}.bin"
    assert stored.stat().st_size == 100
    assert (await api.client.delete(f"/v1/assets/{aid}", headers=api.auth())).status_code == 204
    assert not stored.exists()
    assert (await api.client.get(f"/v1/assets/{aid}", headers=api.auth())).status_code == 404
    assert (await api.client.head(url, headers=SEED)).status_code == 404


async def test_another_orgs_asset_is_404_and_keys_are_required(api: Api) -> None:
    created = await _create(api)
    aid = str(created["assetId"])
    _org, other_key = await api.new_org()
    for method, path in (
        ("GET", f"/v1/assets/{aid}"),
        ("DELETE", f"/v1/assets/{aid}"),
        ("POST", f"/v1/assets/{aid}/revoke_playback"),
    ):
        r = await api.client.request(method, path, headers=api.auth(other_key))
        assert r.status_code == 404, (method, path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    r = await api.client.post(
        f"/v1/assets/{aid}/playback_urls", json={"ttl_seconds": 600}, headers=api.auth(other_key)
    )
    assert r.status_code == 404
    listed = (await api.client.get("/v1/assets", headers=api.auth(other_key))).json()
    assert listed["data"] == []
    for headers in ({}, {"Authorization": "Bearer ck_wrong"}):
        r = await api.client.get("/v1/assets", headers=headers)
        assert r.status_code == 401 and r.json()["status"] == 401
        r = await api.client.post("/v1/assets/uploads", json={"name": "x"}, headers=headers)
        assert r.status_code == 401
    # Nothing was lost: the asset is still there for its own org.
    assert (await api.client.get(f"/v1/assets/{aid}", headers=api.auth())).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x", "expiresInSeconds": 10},
        {"name": "x", "expiresInSeconds": 8 * 24 * 3600},
        {"name": "x", "meta": {"k": 1}},
        {"name": "x", "meta": {f"k{i}": "v" for i in range(17)}},
        {"name": "x", "unknown": True},
        {"name": "x", "maxDurationSeconds": -1},
    ],
)
async def test_create_upload_validation(api: Api, body: dict[str, object]) -> None:
    r = await api.client.post("/v1/assets/uploads", json=body, headers=api.auth())
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"


async def test_size_over_the_limit_is_413(db_url: str, redis_bus: Bus, tmp_path: Path) -> None:
    async with open_api(
        db_url, redis_bus, data_dir=str(tmp_path / "d"), max_upload_bytes=1000
    ) as api:
        r = await api.client.post(
            "/v1/assets/uploads", json={"name": "x", "size": 1001}, headers=api.auth()
        )
        assert r.status_code == 413 and r.json()["status"] == 413
        listed = (await api.client.get("/v1/assets", headers=api.auth())).json()
        assert listed["data"] == []


async def test_unknown_asset_ids_are_404(api: Api) -> None:
    for aid in ("as_nope", "li_01", "x" * 300):
        r = await api.client.get(f"/v1/assets/{aid}", headers=api.auth())
        assert r.status_code == 404
    r = await api.client.get("/v1/assets?cursor=li_01", headers=api.auth())
    assert r.status_code == 422


async def test_upload_completes_on_each_engine(db_url: str, redis_bus: Bus, tmp_path: Path) -> None:
    """Known length and box check both complete the upload on SQLite and PostgreSQL."""
    from tests.vod.uploadkit import RecordingQueue, make_clip

    clip = make_clip(tmp_path / "clip.mp4", seconds=1.0)
    async with open_api(
        db_url, redis_bus, data_dir=str(tmp_path / "d"), upload_idle_seconds=0.3
    ) as api:
        queue = RecordingQueue()
        api.service.packaging = queue
        try:
            sized = await _create(api, size=len(clip))
            unsized = await _create(api)
            for created in (sized, unsized):
                r = await api.client.patch(
                    str(created["uploadUrl"]),
                    content=clip,
                    headers={**SEED, **OCTETS, "upload-offset": "0"},
                )
                assert r.status_code == 204 and r.headers["upload-offset"] == str(len(clip))
            await queue.wait()
            if len(queue.jobs) < 2:
                queue._submitted.clear()
                await queue.wait()
            assert {j.asset_id for j in queue.jobs} == {sized["assetId"], unsized["assetId"]}
            for created in (sized, unsized):
                got = (
                    await api.client.get(f"/v1/assets/{created['assetId']}", headers=api.auth())
                ).json()
                assert got["status"] == "processing" and got["size"] == len(clip)
            await api.service.asset_progress(str(sized["assetId"]), 42.0)
            got = (
                await api.client.get(f"/v1/assets/{sized['assetId']}", headers=api.auth())
            ).json()
            assert got["progress"] == 42.0
        finally:
            await api.app.state.uploads.close()
