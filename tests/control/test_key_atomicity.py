"""Records the control plane writes to the database and to Redis change in both or neither.

Stream-key rotations serialize (each one's Redis record is the database's), and a
rotation that cannot reach Redis is undone: 503, the old key keeps working, the
new one was never shown.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import redis.asyncio as aioredis

from control.store import Repository
from origin.admission import BusStreamKeyAuthorizer, hash_stream_key

from .conftest import Api
from .test_api import assert_problem, create


async def _stored(api: Api, li: dict[str, Any]) -> str:
    repo: Repository = api.service.repo
    stored = await asyncio.to_thread(repo.get_live_input, api.org_id, li["id"])
    assert stored is not None
    return stored.stream_key_sha256


async def _on_bus(redis_client: aioredis.Redis, li: dict[str, Any]) -> str:
    raw = await redis_client.get(f"clutchcall:streamkey:{li['external_input_id']}")
    assert raw is not None
    return str(msgpack.unpackb(raw)["sha256"])


async def test_concurrent_rotations_leave_both_stores_with_the_same_key(
    api: Api, redis_client: aioredis.Redis
) -> None:
    li = (await create(api))["input"]
    url = f"/v1/live_inputs/{li['id']}/rotate_stream_key"
    for _ in range(10):
        answers = await asyncio.gather(
            *(api.client.post(url, headers=api.auth()) for _ in range(20))
        )
        assert all(a.status_code == 200 for a in answers)
        keys = {a.json()["streamKey"] for a in answers}
        assert len(keys) == 20
        stored, published = await _stored(api, li), await _on_bus(redis_client, li)
        assert stored == published
        assert stored in {hash_stream_key(k) for k in keys}


async def test_rotation_during_a_redis_outage_changes_nothing(
    api: Api, redis_server: Any, redis_client: aioredis.Redis
) -> None:
    created = await create(api)
    li, old_key = created["input"], created["streamKey"]
    redis_server.stop()
    r = await api.client.post(f"/v1/live_inputs/{li['id']}/rotate_stream_key", headers=api.auth())
    assert_problem(r, 503)
    assert await _stored(api, li) == hash_stream_key(old_key)
    redis_server.start()  # no persistence: the resync refills it from the database
    await api.service.resync()
    assert await _on_bus(redis_client, li) == hash_stream_key(old_key)
    admission = await BusStreamKeyAuthorizer(api.bus).authorize(li["external_input_id"], old_key)
    assert admission.ok, admission.reason
