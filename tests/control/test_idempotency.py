"""Idempotency-Key on the control plane's POSTs (control/idempotency.py).

A retry with the same key and request replays the first answer (the same input and
stream key, nothing made twice); another request under the key is 422; a retry while
the first runs is 409 with Retry-After; 5xx answers and refused request shapes are not
kept; keys are per org and expire. Each case runs on the in-process bus and on Redis.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from control.idempotency import Claim, MemoryIdempotencyStore
from control.ids import sha256_hex
from control.locks import RecordLocks
from mesh.bus import Bus, BusUnavailable, MemoryBus, connect_bus
from mesh.bus_contract import IDEMPOTENCY_PREFIX

from .conftest import Api, open_api
from .test_api import assert_problem

KEY = "Idempotency-Key"


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    bus = (
        MemoryBus()
        if request.param == "memory"
        else connect_bus(request.getfixturevalue("redis_url"))
    )
    try:
        yield bus
    finally:
        await bus.close()


@pytest.fixture
async def api(sqlite_url: str, bus: Bus) -> AsyncIterator[Api]:
    async with open_api(sqlite_url, bus) as a:
        yield a


def headers(api: Api, key: str, secret: str | None = None) -> dict[str, str]:
    return {**api.auth(secret), KEY: key}


async def post(
    api: Api, path: str, key: str, body: Any = None, secret: str | None = None
) -> httpx.Response:
    return await api.client.post(path, json=body, headers=headers(api, key, secret))


async def inputs(api: Api, secret: str | None = None) -> list[dict[str, Any]]:
    r = await api.client.get("/v1/live_inputs", headers=api.auth(secret))
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


async def until(check: Any, what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_a_retried_create_replays_the_same_input_and_stream_key(api: Api) -> None:
    key = str(uuid.uuid4())
    first = await post(api, "/v1/live_inputs", key, {"name": "Cam", "ingest": "rtmp"})
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = await post(api, "/v1/live_inputs", key, {"ingest": "rtmp", "name": "Cam"})
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.json() == first.json()  # the shown-once stream key too
    assert [li["id"] for li in await inputs(api)] == [first.json()["input"]["id"]]


async def test_a_replayed_rotation_rotated_once(api: Api) -> None:
    li = (await post(api, "/v1/live_inputs", "make", {"name": "Cam"})).json()["input"]
    path = f"/v1/live_inputs/{li['id']}/rotate_stream_key"
    first = await post(api, path, "rotate-1")
    again = await post(api, path, "rotate-1")
    assert first.status_code == again.status_code == 200
    assert again.json()["streamKey"] == first.json()["streamKey"]
    assert again.headers["idempotent-replayed"] == "true"
    stored = await asyncio.to_thread(api.service.repo.get_live_input, api.org_id, li["id"])
    assert stored is not None
    assert stored.stream_key_sha256 == sha256_hex(first.json()["streamKey"])  # rotated once
    other = await post(api, path, "rotate-2")  # a new key is a new rotation
    assert other.json()["streamKey"] != first.json()["streamKey"]


async def test_the_same_key_for_another_request_is_422(api: Api) -> None:
    assert (await post(api, "/v1/live_inputs", "k1", {"name": "A"})).status_code == 201
    body = assert_problem(await post(api, "/v1/live_inputs", "k1", {"name": "B"}), 422)
    assert body["type"].endswith("/idempotency-key-reused")
    li = (await inputs(api))[0]
    other_path = await post(api, f"/v1/live_inputs/{li['id']}/revoke_playback", "k1")
    assert assert_problem(other_path, 422)["type"].endswith("/idempotency-key-reused")
    assert len(await inputs(api)) == 1


@pytest.mark.parametrize("value", ["", "x" * 256, "caf\u00e9", "tab\there"])
async def test_a_malformed_key_is_400(api: Api, value: str) -> None:
    r = await api.client.post(
        "/v1/live_inputs",
        json={"name": "A"},
        headers=[(k.encode(), v.encode()) for k, v in api.auth().items()]
        + [(KEY.encode(), value.encode("latin-1"))],
    )
    assert assert_problem(r, 400)["type"].endswith("/idempotency-key-invalid")
    assert await inputs(api) == []


async def test_the_longest_key_and_any_printable_ascii_are_accepted(api: Api) -> None:
    for key in ("x" * 255, " !~:{}/ key with spaces"):
        assert (await post(api, "/v1/live_inputs", key, {"name": "A"})).status_code == 201


async def test_without_a_key_every_post_runs(api: Api) -> None:
    for _ in range(2):
        r = await api.client.post("/v1/live_inputs", json={"name": "A"}, headers=api.auth())
        assert r.status_code == 201
    assert len(await inputs(api)) == 2


async def test_a_retry_while_the_first_runs_is_409_then_replays(api: Api) -> None:
    # The first request waits for the stream-key lock, which this test holds.
    async with api.service.locks.hold("streamkeys"):
        first = asyncio.ensure_future(post(api, "/v1/live_inputs", "busy", {"name": "A"}))
        layer = api.app.state.idempotency

        async def claimed() -> bool:
            store = layer.store
            if isinstance(store, MemoryIdempotencyStore):
                return len(store) == 1
            return bool(await store._redis.keys(IDEMPOTENCY_PREFIX + "*"))

        await until(claimed, "the first request's claim")
        busy = await post(api, "/v1/live_inputs", "busy", {"name": "A"})
        assert assert_problem(busy, 409)["type"].endswith("/idempotency-key-in-use")
        assert busy.headers["retry-after"] == "1"
        mismatch = await post(api, "/v1/live_inputs", "busy", {"name": "B"})
        assert_problem(mismatch, 422)  # a different request is refused even while it runs
        assert not first.done()
    answer = await first
    assert answer.status_code == 201
    replay = await post(api, "/v1/live_inputs", "busy", {"name": "A"})
    assert replay.json() == answer.json()
    assert len(await inputs(api)) == 1


async def test_the_same_key_in_two_orgs_never_collides(api: Api) -> None:
    _other_org, other_secret = await api.new_org()
    mine = await post(api, "/v1/live_inputs", "shared", {"name": "A"})
    theirs = await post(api, "/v1/live_inputs", "shared", {"name": "A"}, secret=other_secret)
    assert mine.status_code == theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert mine.json()["input"]["id"] != theirs.json()["input"]["id"]
    assert len(await inputs(api)) == len(await inputs(api, other_secret)) == 1


async def test_a_refused_request_shape_is_not_kept(api: Api) -> None:
    bad = await post(api, "/v1/live_inputs", "fix-me", {"name": ""})
    assert assert_problem(bad, 422)["type"].endswith("/validation")
    fixed = await post(api, "/v1/live_inputs", "fix-me", {"name": "Good"})
    assert fixed.status_code == 201, fixed.text


async def test_an_answered_error_below_500_is_kept(api: Api) -> None:
    path = "/v1/live_inputs/li_doesnotexist/playback_urls"
    first = await post(api, path, "nf", {"ttl_seconds": 600})
    assert_problem(first, 404)
    again = await post(api, path, "nf", {"ttl_seconds": 600})
    assert again.status_code == 404 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()


async def test_an_unauthenticated_request_claims_nothing(api: Api) -> None:
    r = await post(api, "/v1/live_inputs", "anon", {"name": "A"}, secret="ck_wrong")
    assert_problem(r, 401)
    assert (await post(api, "/v1/live_inputs", "anon", {"name": "A"})).status_code == 201


async def test_every_creating_post_honours_the_key(api: Api) -> None:
    li = (await post(api, "/v1/live_inputs", "li", {"name": "A"})).json()["input"]
    up = await post(api, "/v1/assets/uploads", "up", {"name": "clip"})
    assert up.status_code == 201, up.text
    cases = [
        ("/v1/assets/uploads", {"name": "clip"}),
        (f"/v1/live_inputs/{li['id']}/playback_urls", {"ttl_seconds": 600}),
        (f"/v1/live_inputs/{li['id']}/revoke_playback", None),
        ("/v1/playback_tokens/jt_abc/revoke", None),
        (f"/v1/assets/{up.json()['assetId']}/revoke_playback", None),
    ]
    for n, (path, body) in enumerate(cases):
        first = await post(api, path, f"case-{n}", body)
        assert first.status_code < 500, first.text
        again = await post(api, path, f"case-{n}", body)
        assert again.headers.get("idempotent-replayed") == "true", path
        assert again.content == first.content
    schema = (await api.client.get("/openapi.json")).json()
    for path, item in schema["paths"].items():
        for method, op in item.items():
            names = {p["name"] for p in op.get("parameters", [])}
            if method == "post":
                assert KEY in names, path
                assert "409" in op["responses"]
            else:
                assert KEY not in names, (method, path)


class _Killed(Exception):
    """The control plane's process dies here."""


@pytest.mark.parametrize(
    ("path", "body", "listing"),
    [
        ("/v1/live_inputs", {"name": "Studio A"}, "/v1/live_inputs"),
        ("/v1/assets/uploads", {"name": "talk"}, "/v1/assets"),
    ],
)
async def test_a_retry_after_a_crash_between_commit_and_answer_makes_nothing_twice(
    api: Api, monkeypatch: pytest.MonkeyPatch, path: str, body: dict[str, Any], listing: str
) -> None:
    # Killed after the record's commit, before the answer reached the claim store:
    # nothing stored, nothing released, no answer sent; the claim lapses with its lease.
    layer = api.app.state.idempotency
    left: list[Claim] = []

    async def die(slot: Any, stored: Any) -> None:
        left.append(slot.claim)
        slot.claim = None
        slot.renewal.cancel()
        raise _Killed

    monkeypatch.setattr(layer, "end", die)
    with pytest.raises(_Killed):
        await post(api, path, "order-17", body)
    monkeypatch.undo()
    (claim,) = left
    await layer.store.release(claim.name, claim.value)  # the 30 s lease ran out

    retry = await post(api, path, "order-17", body)
    assert retry.status_code == 201, retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    made = await api.client.get(listing, headers=api.auth())
    assert [r["id"] for r in made.json()["data"]] == [
        retry.json().get("input", retry.json().get("asset", {}))["id"]
    ]  # one record: the retry's answer is the crashed request's
    again = await post(api, path, "order-17", body)  # the claim store has it now
    assert again.headers["idempotent-replayed"] == "true" and again.content == retry.content
    assert_problem(await post(api, path, "order-17", {"name": "other"}), 422)


async def test_a_second_run_under_a_committed_key_makes_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first request's claim lapsed while it ran, a retry claimed the key and ran too:
    # the first commit wins, the second makes nothing and answers 409 "in use" (not kept),
    # and the retry after it replays the first answer.
    first = await post(api, "/v1/live_inputs", "slow", {"name": "A"})
    layer = api.app.state.idempotency
    (claim_name,) = [n for n in await _names(layer)]
    await _drop(layer, claim_name)

    async def nothing_committed(name: str, claim: bytes) -> None:
        return None

    monkeypatch.setattr(layer, "_committed", nothing_committed)
    second = await post(api, "/v1/live_inputs", "slow", {"name": "A"})
    assert assert_problem(second, 409)["type"].endswith("/idempotency-key-in-use")
    monkeypatch.undo()
    retry = await post(api, "/v1/live_inputs", "slow", {"name": "A"})
    assert retry.headers["idempotent-replayed"] == "true" and retry.json() == first.json()
    assert [li["id"] for li in await inputs(api)] == [first.json()["input"]["id"]]


async def _names(layer: Any) -> list[str]:
    store = layer.store
    if isinstance(store, MemoryIdempotencyStore):
        return list(store._data)
    return [n.decode() for n in await store._redis.keys(IDEMPOTENCY_PREFIX + "*")]


async def _drop(layer: Any, name: str) -> None:
    store = layer.store
    if isinstance(store, MemoryIdempotencyStore):
        del store._data[name]
    else:
        await store._redis.delete(name)


async def test_an_undone_create_keeps_no_answer(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    # The stream key's record cannot be written: the input is deleted again (503) and
    # so is the answer committed with it; the retry makes the input.
    real = api.service._write_stream_key

    async def down(li: Any, event: Any) -> None:
        raise BusUnavailable("redis down")

    monkeypatch.setattr(api.service, "_write_stream_key", down)
    assert_problem(await post(api, "/v1/live_inputs", "k", {"name": "A"}), 503)
    monkeypatch.setattr(api.service, "_write_stream_key", real)
    retry = await post(api, "/v1/live_inputs", "k", {"name": "A"})
    assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers
    assert [li["id"] for li in await inputs(api)] == [retry.json()["input"]["id"]]


async def test_a_kept_answer_expires(sqlite_url: str) -> None:
    now = [1000.0]
    async with open_api(sqlite_url, MemoryBus(), idempotency_ttl=60.0) as api:
        api.app.state.idempotency.store = MemoryIdempotencyStore(clock=lambda: now[0])
        api.app.state.idempotency.clock = lambda: now[0]  # the database's copy expires too
        first = await post(api, "/v1/live_inputs", "k", {"name": "A"})
        now[0] += 59.0
        assert (await post(api, "/v1/live_inputs", "k", {"name": "A"})).json() == first.json()
        now[0] += 2.0
        later = await post(api, "/v1/live_inputs", "k", {"name": "A"})
        assert later.status_code == 201 and "idempotent-replayed" not in later.headers
        assert len(await inputs(api)) == 2


async def test_redis_keeps_a_sealed_answer_with_its_ttl_then_drops_it(
    sqlite_url: str, redis_bus: Bus, redis_client: aioredis.Redis
) -> None:
    async with open_api(sqlite_url, redis_bus, idempotency_ttl=1.5) as api:
        first = await post(api, "/v1/live_inputs", "sealed", {"name": "A"})
        (name,) = await redis_client.keys(IDEMPOTENCY_PREFIX + "*")
        assert isinstance(name, bytes)
        assert name.decode().startswith(f"{IDEMPOTENCY_PREFIX}{api.org_id}:")
        assert b"sealed" not in name  # the key's hash names the record, not the key
        raw = await redis_client.get(name)
        assert isinstance(raw, bytes)
        assert first.json()["streamKey"].encode() not in raw
        assert first.json()["input"]["id"].encode() not in raw
        assert 0 < await redis_client.pttl(name) <= 1500

        async def gone() -> bool:
            return not await redis_client.exists(name)

        await until(gone, "the record's expiry")
        later = await post(api, "/v1/live_inputs", "sealed", {"name": "A"})
        assert "idempotent-replayed" not in later.headers
        assert len(await inputs(api)) == 2


async def test_a_5xx_answer_is_not_kept_so_the_retry_runs(sqlite_url: str, redis_bus: Bus) -> None:
    async with open_api(sqlite_url, redis_bus) as api:
        li = (await post(api, "/v1/live_inputs", "make", {"name": "A"})).json()["input"]
        path = f"/v1/live_inputs/{li['id']}/rotate_stream_key"
        # Another replica holds the stream-key lock past this one's patience: 503 busy.
        api.service.locks = RecordLocks(redis_bus, wait=0.2)
        async with RecordLocks(redis_bus).hold("streamkeys"):
            busy = await post(api, path, "rot")
            assert assert_problem(busy, 503)["type"].endswith("/busy")
        after = await post(api, path, "rot")
        assert after.status_code == 200, after.text
        assert "idempotent-replayed" not in after.headers
        again = await post(api, path, "rot")
        assert again.json()["streamKey"] == after.json()["streamKey"]


async def test_two_control_planes_on_one_redis_share_the_keys(
    sqlite_url: str, redis_url: str
) -> None:
    bus_a, bus_b = connect_bus(redis_url), connect_bus(redis_url)
    try:
        async with open_api(sqlite_url, bus_a) as a, open_api(sqlite_url, bus_b) as b:
            b.org_id, b.api_key = a.org_id, a.api_key  # one database: the same org
            first = await post(a, "/v1/live_inputs", "k", {"name": "A"})
            replay = await post(b, "/v1/live_inputs", "k", {"name": "A"})
            assert replay.headers["idempotent-replayed"] == "true"
            assert replay.json() == first.json()
            assert_problem(await post(b, "/v1/live_inputs", "k", {"name": "B"}), 422)

            async with RecordLocks(bus_a).hold("streamkeys"):  # a third party's change
                running = asyncio.ensure_future(post(a, "/v1/live_inputs", "k2", {"name": "C"}))

                async def claimed() -> bool:
                    return (
                        len(
                            await a.app.state.idempotency.store._redis.keys(
                                IDEMPOTENCY_PREFIX + "*"
                            )
                        )
                        == 2
                    )

                await until(claimed, "replica A's claim")
                busy = await post(b, "/v1/live_inputs", "k2", {"name": "C"})
                assert_problem(busy, 409)
            done = await running
            assert done.status_code == 201
            assert (await post(b, "/v1/live_inputs", "k2", {"name": "C"})).json() == done.json()
            assert len(await inputs(a)) == 2
    finally:
        await bus_a.close()
        await bus_b.close()


async def test_a_client_that_goes_away_mid_request_still_gets_its_answer_kept(api: Api) -> None:
    async with api.service.locks.hold("streamkeys"):
        gone = asyncio.ensure_future(post(api, "/v1/live_inputs", "left", {"name": "A"}))
        layer = api.app.state.idempotency

        async def claimed() -> bool:
            store = layer.store
            if isinstance(store, MemoryIdempotencyStore):
                return len(store) == 1
            return bool(await store._redis.keys(IDEMPOTENCY_PREFIX + "*"))

        await until(claimed, "the request's claim")
        gone.cancel()  # the client hangs up while the request waits
        with pytest.raises(asyncio.CancelledError):
            await gone
    replies: list[httpx.Response] = []

    async def answered() -> bool:
        r = await post(api, "/v1/live_inputs", "left", {"name": "A"})
        replies.append(r)
        return r.status_code != 409

    await until(answered, "the abandoned request's answer")
    assert replies[-1].status_code == 201, replies[-1].text
    assert replies[-1].headers["idempotent-replayed"] == "true"  # it ran once, to the end
    assert len(await inputs(api)) == 1
