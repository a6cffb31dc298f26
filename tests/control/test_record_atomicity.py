"""Every record the control plane keeps in both the database and Redis changes in both or
in neither, and concurrent changes serialize (control.locks; stream keys: see
test_key_atomicity.py).

Record types: revocations (of one token, of an input's or an asset's tokens), signing
keys with the JWKS, live inputs (their deletion), stream keys across processes. Each
gets a concurrency check (the stores agree afterwards) and an outage check (answered
503 while Redis is down, or dies mid-change: nothing changed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis

from control.service import ControlService
from control.signing import public_jwks
from control.store import Repository, Revocation
from mesh.bus import Bus, BusUnavailable, connect_bus
from origin.admission import BusStreamKeyAuthorizer, hash_stream_key
from tests.conftest import RedisServer

from .conftest import Api, open_api
from .test_api import assert_problem, create


@pytest.fixture
async def api(db_url: str, redis_bus: Bus, tmp_path: Path) -> AsyncIterator[Api]:
    async with open_api(db_url, redis_bus, data_dir=str(tmp_path / "data")) as a:
        try:
            yield a
        finally:
            await a.app.state.uploads.close()


@contextlib.asynccontextmanager
async def other_process(
    db_url: str, redis_url: str, data_dir: Path
) -> AsyncIterator[ControlService]:
    """A second control plane on the same database and Redis (a replica, or
    ``clutchcall admin``): its own connections, its own in-process state."""
    bus = connect_bus(redis_url)
    async with open_api(db_url, bus, data_dir=str(data_dir)) as other:
        try:
            yield other.service
        finally:
            await bus.close()


async def _record(client: aioredis.Redis, key: str) -> dict[str, Any] | None:
    raw = await client.get(key)
    return None if raw is None else dict(msgpack.unpackb(raw))


def _repo(api: Api) -> Repository:
    repo: Repository = api.service.repo
    return repo


async def _revocation(api: Api, rev_id: str) -> Revocation | None:
    return await asyncio.to_thread(_repo(api).get_revocation, rev_id)


def _dies_after(redis_server: RedisServer, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (a repository method, run for real), after which Redis goes away."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        redis_server.stop()
        return result

    return wrapped


# -- revocations ------------------------------------------------------------------------


async def test_concurrent_revocations_of_an_input_leave_both_stores_alike(
    api: Api, redis_client: aioredis.Redis
) -> None:
    li = (await create(api))["input"]
    key = f"clutchcall:revoked:sub:{li['external_input_id']}"
    for _ in range(8):
        answers = await asyncio.gather(
            *(
                api.client.post(f"/v1/live_inputs/{li['id']}/revoke_playback", headers=api.auth())
                for _ in range(12)
            )
        )
        assert all(a.status_code == 200 for a in answers), answers[0].text
        stored = await _revocation(api, f"sub:{li['external_input_id']}")
        published = await _record(redis_client, key)
        assert stored is not None and published is not None
        assert published["before"] == stored.before
        assert published["exp"] == stored.expires_at


async def test_a_token_revocation_during_a_redis_outage_changes_nothing(
    api: Api, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    li = (await create(api))["input"]
    r = await api.client.post(
        f"/v1/live_inputs/{li['id']}/playback_urls", json={"ttl_seconds": 600}, headers=api.auth()
    )
    jti = r.json()["jti"]
    redis_server.stop()
    r = await api.client.post(f"/v1/playback_tokens/{jti}/revoke", headers=api.auth())
    assert_problem(r, 503)
    assert await _revocation(api, f"jti:{jti}") is None
    redis_server.start()
    await api.service.resync()
    assert await _record(redis_client, f"clutchcall:revoked:jti:{jti}") is None


async def test_a_revocation_whose_redis_write_fails_is_undone_in_the_database(
    api: Api, redis_server: RedisServer, redis_client: aioredis.Redis, monkeypatch: Any
) -> None:
    li = (await create(api))["input"]
    first = await api.client.post(f"/v1/live_inputs/{li['id']}/revoke_playback", headers=api.auth())
    assert first.status_code == 200
    rev_id = f"sub:{li['external_input_id']}"
    before = await _revocation(api, rev_id)
    repo = _repo(api)
    monkeypatch.setattr(
        repo, "upsert_revocation", _dies_after(redis_server, repo.upsert_revocation)
    )
    r = await api.client.post(f"/v1/live_inputs/{li['id']}/revoke_playback", headers=api.auth())
    assert_problem(r, 503)
    assert await _revocation(api, rev_id) == before  # the earlier revocation, unchanged
    monkeypatch.undo()
    redis_server.start()
    await api.service.resync()
    published = await _record(redis_client, f"clutchcall:revoked:{rev_id}")
    assert before is not None and published is not None
    assert published["before"] == before.before


# -- live inputs ------------------------------------------------------------------------


async def test_deleting_an_input_during_a_redis_outage_changes_nothing(
    api: Api, redis_server: RedisServer
) -> None:
    created = await create(api)
    li, key = created["input"], created["streamKey"]
    redis_server.stop()
    r = await api.client.delete(f"/v1/live_inputs/{li['id']}", headers=api.auth())
    assert_problem(r, 503)
    assert (
        await api.client.get(f"/v1/live_inputs/{li['id']}", headers=api.auth())
    ).status_code == 200
    assert await _revocation(api, f"sub:{li['external_input_id']}") is None
    redis_server.start()
    await api.service.resync()
    admission = await BusStreamKeyAuthorizer(api.bus).authorize(li["external_input_id"], key)
    assert admission.ok, admission.reason


async def test_a_delete_whose_database_write_fails_restores_the_redis_records(
    api: Api, redis_client: aioredis.Redis, monkeypatch: Any
) -> None:
    created = await create(api)
    li, key = created["input"], created["streamKey"]
    repo = _repo(api)

    def broken(*args: Any, **kwargs: Any) -> Any:
        from control.store import StoreError

        raise StoreError("database went away")

    monkeypatch.setattr(repo, "delete_live_input", broken)
    r = await api.client.delete(f"/v1/live_inputs/{li['id']}", headers=api.auth())
    assert_problem(r, 503)
    monkeypatch.undo()
    assert await _revocation(api, f"sub:{li['external_input_id']}") is None
    sub_key = f"clutchcall:revoked:sub:{li['external_input_id']}"
    assert await _record(redis_client, sub_key) is None
    admission = await BusStreamKeyAuthorizer(api.bus).authorize(li["external_input_id"], key)
    assert admission.ok, admission.reason  # no resync needed: the record was put back


async def test_concurrent_creates_and_deletes_leave_both_stores_alike(
    api: Api, redis_client: aioredis.Redis
) -> None:
    inputs = [(await create(api, name=f"i{i}"))["input"] for i in range(6)]
    await asyncio.gather(
        *(api.client.delete(f"/v1/live_inputs/{li['id']}", headers=api.auth()) for li in inputs),
        *(create(api, name=f"n{i}") for i in range(6)),
    )
    stored = {
        li.external_input_id: li.stream_key_sha256
        for li in await asyncio.to_thread(_repo(api).all_live_inputs)
    }
    keys = [k.decode() async for k in redis_client.scan_iter("clutchcall:streamkey:*")]
    published = {}
    for k in keys:
        record = await _record(redis_client, k)
        assert record is not None
        published[k.removeprefix("clutchcall:streamkey:")] = record["sha256"]
    assert published == stored and len(stored) == 6


# -- assets -----------------------------------------------------------------------------


async def test_deleting_an_asset_during_a_redis_outage_changes_nothing(
    api: Api, redis_server: RedisServer
) -> None:
    r = await api.client.post("/v1/assets/uploads", json={"name": "a.mp4"}, headers=api.auth())
    asset_id = r.json()["assetId"]
    redis_server.stop()
    r = await api.client.delete(f"/v1/assets/{asset_id}", headers=api.auth())
    assert_problem(r, 503)
    assert (await api.client.get(f"/v1/assets/{asset_id}", headers=api.auth())).status_code == 200


# -- signing keys -----------------------------------------------------------------------


async def test_concurrent_signing_key_rotations_in_two_processes_leave_both_stores_alike(
    api: Api, db_url: str, redis_url: str, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    async with other_process(db_url, redis_url, tmp_path / "other") as other:
        for _ in range(5):
            await asyncio.gather(
                *(svc.rotate_signing_key() for svc in (api.service, other) for _ in range(4))
            )
            now = api.service._clock()
            keys = await asyncio.to_thread(_repo(api).signing_keys, now)
            published = await _record(redis_client, "clutchcall:jwks")
            assert published == public_jwks(keys)
            assert sum(k.retired_at is None for k in keys) == 1


async def test_a_signing_key_rotation_during_a_redis_outage_changes_nothing(
    api: Api, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    await api.service.jwks()  # the first key
    keys = await asyncio.to_thread(_repo(api).signing_keys, api.service._clock())
    redis_server.stop()
    with pytest.raises(BusUnavailable):
        await api.service.rotate_signing_key()
    assert await asyncio.to_thread(_repo(api).signing_keys, api.service._clock()) == keys
    redis_server.start()
    await api.service.resync()
    assert await _record(redis_client, "clutchcall:jwks") == public_jwks(keys)


# -- stream keys across processes -------------------------------------------------------


async def test_stream_key_rotations_in_two_processes_serialize(
    api: Api, db_url: str, redis_url: str, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    li = (await create(api))["input"]
    async with other_process(db_url, redis_url, tmp_path / "other") as other:
        for _ in range(5):
            answers = await asyncio.gather(
                *(
                    svc.rotate_stream_key(api.org_id, li["id"])
                    for svc in (api.service, other)
                    for _ in range(4)
                )
            )
            stored = await asyncio.to_thread(_repo(api).get_live_input, api.org_id, li["id"])
            record = await _record(redis_client, f"clutchcall:streamkey:{li['external_input_id']}")
            assert stored is not None and record is not None
            assert record["sha256"] == stored.stream_key_sha256
            assert stored.stream_key_sha256 in {hash_stream_key(k) for _, k in answers}
