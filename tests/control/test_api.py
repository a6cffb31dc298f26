"""The control plane API over real SQLite/PostgreSQL and a real redis-server."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import msgpack
import pytest
import redis.asyncio as aioredis

from control.ids import sha256_hex
from mesh.bus import BusUnavailable
from tests.control.conftest import Api

PROBLEM = "application/problem+json"


def assert_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["type"].startswith("https://clutchcall.dev/problems/")
    assert body["title"] and body["detail"]
    return body


async def create(api: Api, name: str = "Live Demo", ingest: str = "fmp4") -> dict[str, Any]:
    r = await api.client.post(
        "/v1/live_inputs", json={"name": name, "ingest": ingest}, headers=api.auth()
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


class Channel:
    """A real Redis subscription, SUBSCRIBEd before the action under test."""

    def __init__(self, client: aioredis.Redis, name: str) -> None:
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.name = name

    async def __aenter__(self) -> Channel:
        await self._pubsub.subscribe(self.name)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._pubsub.aclose()

    async def next(self) -> dict[str, Any]:
        async with asyncio.timeout(2.0):
            while True:
                msg = await self._pubsub.get_message(timeout=2.0)
                if msg is not None and msg["type"] == "message":
                    data: dict[str, Any] = msgpack.unpackb(msg["data"])
                    return data


async def record(client: aioredis.Redis, key: str) -> dict[str, Any] | None:
    raw = await client.get(key)
    return None if raw is None else dict(msgpack.unpackb(raw))


async def test_create_shows_stream_key_once_and_stores_its_hash(
    api: Api, redis_client: aioredis.Redis
) -> None:
    body = await create(api, ingest="rtmp")
    li, key = body["input"], body["streamKey"]
    assert key.startswith("sk_") and len(key) >= 3 + 32
    assert li["id"].startswith("li_") and li["external_input_id"].startswith("lv_")
    ext = li["external_input_id"]
    assert li["org_id"] == api.org_id
    assert li["namespace"] == f"stream/{api.org_id}/{ext}"
    assert li["rtmp_url"] == f"rtmp://127.0.0.1/live/{ext}"
    assert (li["status"], li["last_error"], li["ingest"]) == ("idle", None, "rtmp")

    got = await api.client.get(f"/v1/live_inputs/{li['id']}", headers=api.auth())
    listed = await api.client.get("/v1/live_inputs", headers=api.auth())
    for r in (got, listed):
        assert r.status_code == 200
        assert key not in r.text and "streamKey" not in r.text and "sha256" not in r.text
    stored = api.service.repo.get_live_input(api.org_id, li["id"])
    assert stored is not None and stored.stream_key_sha256 == sha256_hex(key)

    rec = await record(redis_client, f"clutchcall:streamkey:{ext}")
    assert rec is not None
    assert rec["sha256"] == sha256_hex(key)
    assert (rec["org"], rec["input"], rec["namespace"]) == (api.org_id, li["id"], li["namespace"])


async def test_orgs_are_isolated(api: Api) -> None:
    li = (await create(api))["input"]
    ticket = await api.client.post(
        f"/v1/live_inputs/{li['id']}/playback_urls", json={"ttl_seconds": 600}, headers=api.auth()
    )
    jti = ticket.json()["jti"]
    _other_org, other_key = await api.new_org()
    h = api.auth(other_key)
    base = f"/v1/live_inputs/{li['id']}"
    for method, path, body in [
        ("GET", base, None),
        ("PATCH", base, {"name": "stolen"}),
        ("DELETE", base, None),
        ("POST", f"{base}/rotate_stream_key", None),
        ("POST", f"{base}/playback_urls", {"ttl_seconds": 600}),
        ("POST", f"{base}/revoke_playback", None),
        ("POST", f"/v1/playback_tokens/{jti}/revoke", None),
    ]:
        r = await api.client.request(method, path, json=body, headers=h)
        assert_problem(r, 404)
    r = await api.client.get("/v1/live_inputs", headers=h)
    assert r.status_code == 200 and r.json()["data"] == []
    # The expected-org header must name the key's own org.
    r = await api.client.get(base, headers={**api.auth(), "X-ClutchCall-Org": _other_org})
    assert_problem(r, 404)
    r = await api.client.get(base, headers={**api.auth(), "X-ClutchCall-Org": api.org_id})
    assert r.status_code == 200 and r.json()["name"] == "Live Demo"


async def test_every_error_is_problem_json(api: Api) -> None:
    assert_problem(await api.client.get("/v1/live_inputs"), 401)
    r = await api.client.get("/v1/live_inputs", headers=api.auth("ck_wrong"))
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert_problem(r, 401)
    assert_problem(await api.client.get("/v1/live_inputs/li_nothing", headers=api.auth()), 404)
    assert_problem(await api.client.get("/v1/nowhere", headers=api.auth()), 404)
    r = await api.client.put("/v1/live_inputs", headers=api.auth())
    assert_problem(r, 405)
    for bad in [{"name": ""}, {"name": "x", "ingest": "srt"}, {"name": "a\x00b"}, {"x": 1}]:
        body = assert_problem(
            await api.client.post("/v1/live_inputs", json=bad, headers=api.auth()), 422
        )
        assert body["errors"]
    r = await api.client.post(
        "/v1/live_inputs",
        content=b"{not json",
        headers={**api.auth(), "content-type": "application/json"},
    )
    assert_problem(r, 422)
    assert_problem(await api.client.get("/v1/live_inputs?limit=0", headers=api.auth()), 422)
    assert_problem(await api.client.get("/v1/live_inputs?cursor=bogus", headers=api.auth()), 422)


async def test_list_paginates_update_and_delete(api: Api, redis_client: aioredis.Redis) -> None:
    made = [(await create(api, f"in{i}"))["input"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await api.client.get("/v1/live_inputs", params=params, headers=api.auth())).json()
        seen += [x["id"] for x in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [x["id"] for x in made]

    target = made[0]
    r = await api.client.patch(
        f"/v1/live_inputs/{target['id']}",
        json={"name": "Keynote", "ingest": "rtmp"},
        headers=api.auth(),
    )
    assert r.status_code == 200
    assert (r.json()["name"], r.json()["ingest"]) == ("Keynote", "rtmp")
    assert r.json()["external_input_id"] == target["external_input_id"]

    ext = target["external_input_id"]
    async with Channel(redis_client, "clutchcall:streamkeys") as ch:
        r = await api.client.delete(f"/v1/live_inputs/{target['id']}", headers=api.auth())
        assert r.status_code == 204
        msg = await ch.next()
    assert (msg["external_input_id"], msg["event"]) == (ext, "deleted")
    assert await record(redis_client, f"clutchcall:streamkey:{ext}") is None
    # Deleting an input also revokes every playback token minted for it.
    revoked = await record(redis_client, f"clutchcall:revoked:sub:{ext}")
    assert revoked is not None and revoked["before"] > 0
    assert_problem(await api.client.get(f"/v1/live_inputs/{target['id']}", headers=api.auth()), 404)
    assert_problem(
        await api.client.delete(f"/v1/live_inputs/{target['id']}", headers=api.auth()), 404
    )


async def test_rotation_replaces_hash_and_publishes(api: Api, redis_client: aioredis.Redis) -> None:
    body = await create(api)
    li, old_key = body["input"], body["streamKey"]
    ext = li["external_input_id"]
    async with Channel(redis_client, "clutchcall:streamkeys") as ch:
        r = await api.client.post(
            f"/v1/live_inputs/{li['id']}/rotate_stream_key", headers=api.auth()
        )
        assert r.status_code == 200
        msg = await ch.next()
    new_key = r.json()["streamKey"]
    assert new_key != old_key and new_key.startswith("sk_")
    assert (msg["external_input_id"], msg["event"]) == (ext, "rotated")
    rec = await record(redis_client, f"clutchcall:streamkey:{ext}")
    assert rec is not None and rec["sha256"] == sha256_hex(new_key) != sha256_hex(old_key)
    stored = api.service.repo.get_live_input(api.org_id, li["id"])
    assert stored is not None and stored.stream_key_sha256 == sha256_hex(new_key)
    assert r.json()["input"]["stream_key_rotated_at"] > li["stream_key_rotated_at"]


async def _mint(api: Api, input_id: str, ttl: int = 600) -> httpx.Response:
    return await api.client.post(
        f"/v1/live_inputs/{input_id}/playback_urls", json={"ttl_seconds": ttl}, headers=api.auth()
    )


def _verify(jwks: dict[str, Any], token: str) -> dict[str, Any]:
    keyset = jwt.PyJWKSet.from_dict(jwks)
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keyset.keys if k.key_id == kid)
    claims: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=["ES256"], audience="clutchcall-playback"
    )
    return claims


async def test_signed_playback_url_verifies_against_jwks(
    api: Api, redis_client: aioredis.Redis
) -> None:
    li = (await create(api))["input"]
    r = await _mint(api, li["id"], 900)
    assert r.status_code == 201
    ticket = r.json()
    parts = urlsplit(ticket["url"])
    assert f"{parts.scheme}://{parts.netloc}" == "https://relay.test:4443"
    assert parts.path == "/" + li["namespace"]
    assert parse_qs(parts.query)["token"] == [ticket["token"]]

    jwks = (await api.client.get("/.well-known/jwks.json")).json()
    assert all(k["alg"] == "ES256" and k["kty"] == "EC" and "d" not in k for k in jwks["keys"])
    claims = _verify(jwks, ticket["token"])
    assert claims["sub"] == li["external_input_id"] and claims["org"] == api.org_id
    assert claims["jti"] == ticket["jti"] and claims["ns"] == li["namespace"]
    assert claims["exp"] - int(claims["iat"]) == 900
    assert jwt.get_unverified_header(ticket["token"])["kid"] == ticket["kid"]
    assert (await record(redis_client, "clutchcall:jwks")) == jwks
    # A different audience is refused by a verifier.
    with pytest.raises(jwt.InvalidAudienceError):
        keyset = jwt.PyJWKSet.from_dict(jwks)
        jwt.decode(ticket["token"], keyset.keys[0].key, algorithms=["ES256"], audience="other")


@pytest.mark.parametrize(
    "ttl,status", [(59, 422), (60, 201), (86400, 201), (86401, 422), (-5, 422)]
)
async def test_ttl_bounds(api: Api, ttl: int, status: int) -> None:
    li = (await create(api))["input"]
    r = await _mint(api, li["id"], ttl)
    if status == 201:
        assert r.status_code == 201
    else:
        body = assert_problem(r, 422)
        assert "ttl_seconds" in body["detail"]


async def test_signing_key_rotation_keeps_old_key_for_overlap(
    api: Api, redis_client: aioredis.Redis
) -> None:
    li = (await create(api))["input"]
    old = (await _mint(api, li["id"])).json()
    await api.service.rotate_signing_key()
    new = (await _mint(api, li["id"])).json()
    assert new["kid"] != old["kid"]
    jwks = (await api.client.get("/.well-known/jwks.json")).json()
    assert [k["kid"] for k in jwks["keys"]] == [new["kid"], old["kid"]]
    assert _verify(jwks, old["token"])["jti"] == old["jti"]
    assert _verify(jwks, new["token"])["jti"] == new["jti"]
    assert (await record(redis_client, "clutchcall:jwks")) == jwks
    retired = next(k for k in api.service.repo.signing_keys(0) if k.kid == old["kid"])
    assert retired.expires_at is not None and retired.retired_at is not None
    assert retired.expires_at >= retired.retired_at + 86400


async def test_revoke_one_token_by_jti(api: Api, redis_client: aioredis.Redis) -> None:
    li = (await create(api))["input"]
    ticket = (await _mint(api, li["id"], 600)).json()
    exp = _verify((await api.client.get("/.well-known/jwks.json")).json(), ticket["token"])["exp"]
    async with Channel(redis_client, "clutchcall:revocations") as ch:
        r = await api.client.post(f"/v1/playback_tokens/{ticket['jti']}/revoke", headers=api.auth())
        assert r.status_code == 200, r.text
        msg = await ch.next()
    assert msg["jti"] == ticket["jti"] and msg["exp"] == exp and "at" in msg
    assert r.json()["kind"] == "jti" and r.json()["jti"] == ticket["jti"]
    key = f"clutchcall:revoked:jti:{ticket['jti']}"
    assert (await record(redis_client, key)) == {"exp": exp}
    ttl_ms = await redis_client.pttl(key)
    assert 500_000 < ttl_ms <= 601_000
    assert_problem(
        await api.client.post("/v1/playback_tokens/jt_unknown/revoke", headers=api.auth()), 404
    )


async def test_revoke_every_token_of_an_input(api: Api, redis_client: aioredis.Redis) -> None:
    li = (await create(api))["input"]
    before_tok = (await _mint(api, li["id"])).json()
    async with Channel(redis_client, "clutchcall:revocations") as ch:
        r = await api.client.post(f"/v1/live_inputs/{li['id']}/revoke_playback", headers=api.auth())
        assert r.status_code == 200
        msg = await ch.next()
    after_tok = (await _mint(api, li["id"])).json()
    ext = li["external_input_id"]
    assert msg["sub"] == ext
    assert msg["exp"] - msg["before"] == pytest.approx(86400, abs=1)
    rec = await record(redis_client, f"clutchcall:revoked:sub:{ext}")
    assert rec == {"before": msg["before"], "exp": msg["exp"]}
    assert 86_000_000 < await redis_client.pttl(f"clutchcall:revoked:sub:{ext}") <= 86_400_000
    jwks = (await api.client.get("/.well-known/jwks.json")).json()
    # POP rule: revoked iff iat <= before. Old tokens are, tokens minted afterwards are not.
    assert _verify(jwks, before_tok["token"])["iat"] <= msg["before"]
    assert _verify(jwks, after_tok["token"])["iat"] > msg["before"]
    assert [r.id for r in api.service.repo.active_revocations(0)] == [f"sub:{ext}"]


async def test_auth_failures_are_rate_limited(db_url: str, redis_bus: Any) -> None:
    from tests.control.conftest import open_api

    async with open_api(db_url, redis_bus, auth_failure_limit=3, auth_failure_window=30) as api:
        for _ in range(3):
            assert_problem(await api.client.get("/v1/live_inputs", headers=api.auth("ck_bad")), 401)
        r = await api.client.get("/v1/live_inputs", headers=api.auth("ck_bad"))
        body = assert_problem(r, 429)
        assert 1 <= int(r.headers["retry-after"]) <= 30
        assert "retry" in body["detail"]
        # Throttled per address and key prefix: a good key from this client still works.
        assert (await api.client.get("/v1/live_inputs", headers=api.auth())).status_code == 200
        # Another client address is not affected.
        transport = httpx.ASGITransport(app=api.app, client=("10.9.9.9", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://c") as other:
            assert (await other.get("/v1/live_inputs", headers=api.auth())).status_code == 200


async def test_revoked_api_key_is_refused(api: Api) -> None:
    key, secret = await api.service.create_api_key(api.org_id)
    assert (await api.client.get("/v1/live_inputs", headers=api.auth(secret))).status_code == 200
    assert api.service.repo.revoke_api_key(key.id, 1.0)
    assert_problem(await api.client.get("/v1/live_inputs", headers=api.auth(secret)), 401)
    assert (await api.client.get("/v1/live_inputs", headers=api.auth())).status_code == 200


async def test_live_status_follows_routes_and_origin_reports(api: Api, redis_bus: Any) -> None:
    li = (await create(api))["input"]
    ext, ns = li["external_input_id"], li["namespace"]
    listener = asyncio.create_task(api.service.run_status_listener())

    async def status() -> dict[str, Any]:
        body: dict[str, Any] = (
            await api.client.get(f"/v1/live_inputs/{li['id']}", headers=api.auth())
        ).json()
        return body

    try:
        # An origin reports an error (it may publish before we subscribed: repeat).
        report = {"external_input_id": ext, "status": "error", "detail": "transcoder exited"}
        async with asyncio.timeout(5):
            while (body := await status())["status"] != "error":
                await redis_bus.publish("clutchcall:input-status", {**report, "at": time.time()})
                await asyncio.sleep(0.05)
        assert body["last_error"] == "transcoder exited" and body["status_at"] is not None
        # Junk on the channel changes nothing.
        await redis_bus.publish("clutchcall:input-status", {"garbage": True})
        await redis_bus.publish(
            "clutchcall:input-status", {"external_input_id": ext, "status": "bogus"}
        )
        await asyncio.sleep(0.2)
        assert (await status())["status"] == "error"

        # While an origin routes the namespace, the input is live (mesh topology record).
        await redis_bus.set(
            f"clutchcall:route:{ns}", {"origin": "o1", "region": "r", "at": time.time()}, ttl=3
        )
        body = await status()
        assert (body["status"], body["last_error"]) == ("live", None)
        listed = (await api.client.get("/v1/live_inputs", headers=api.auth())).json()["data"]
        assert [x["status"] for x in listed if x["id"] == li["id"]] == ["live"]
        # The broadcast ended (route gone): idle, not the earlier error.
        await redis_bus.delete(f"clutchcall:route:{ns}")
        assert (await status())["status"] == "idle"
    finally:
        listener.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listener


async def test_resync_restores_bus_records_after_redis_restart(
    api: Api, redis_server: Any, redis_url: str
) -> None:
    body = await create(api)
    li, key = body["input"], body["streamKey"]
    ticket = (await _mint(api, li["id"])).json()
    await api.client.post(f"/v1/playback_tokens/{ticket['jti']}/revoke", headers=api.auth())
    redis_server.restart()  # no persistence: every record is gone
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.keys("clutchcall:*") == []
        # The first command on the bus's pooled connection may still see the old
        # server go away; run_resync retries the same way.
        for attempt in range(3):
            try:
                await api.service.resync()
                break
            except BusUnavailable:
                if attempt == 2:
                    raise
        rec = await record(client, f"clutchcall:streamkey:{li['external_input_id']}")
        assert rec is not None and rec["sha256"] == sha256_hex(key)
        assert await record(client, f"clutchcall:revoked:jti:{ticket['jti']}") is not None
        assert await record(client, "clutchcall:jwks") is not None
    finally:
        await client.aclose()


async def test_bus_outage_is_a_503_problem_not_a_crash(api: Api, redis_server: Any) -> None:
    redis_server.stop()
    r = await api.client.post("/v1/live_inputs", json={"name": "x"}, headers=api.auth())
    body = assert_problem(r, 503)
    assert r.headers["retry-after"]
    assert "bus" in body["detail"]
    # Nothing half-created: the key was never shown, so the input is gone too.
    listed = await api.client.get("/v1/live_inputs", headers=api.auth())
    assert listed.status_code == 200 and listed.json()["data"] == []


async def test_resync_removes_records_of_inputs_deleted_while_bus_was_down(
    api: Api, redis_client: aioredis.Redis
) -> None:
    li = (await create(api))["input"]
    key = f"clutchcall:streamkey:{li['external_input_id']}"
    assert api.service.repo.delete_live_input(api.org_id, li["id"]) is not None  # bus missed it
    assert await record(redis_client, key) is not None
    await api.service.resync()
    assert await record(redis_client, key) is None


async def test_operator_chosen_ids_work_like_minted_ones(api: Api) -> None:
    org, _key, secret = await api.service.create_org("Seed", org_id="org_abc")
    await api.service.create_input(org.id, "Keynote", "rtmp", input_id="li_xyz")
    r = await api.client.get(
        "/v1/live_inputs/li_xyz", headers={**api.auth(secret), "X-ClutchCall-Org": "org_abc"}
    )
    assert r.status_code == 200 and r.json()["namespace"].startswith("stream/org_abc/lv_")
    page = await api.client.get("/v1/live_inputs?cursor=li_xyz", headers=api.auth(secret))
    assert page.status_code == 200 and page.json()["data"] == []
    with pytest.raises(Exception) as info:
        await api.service.create_org("Again", org_id="org_abc")
    assert type(info.value).__name__ == "Conflict"
    r = await api.client.get("/v1/live_inputs/li_xyz", headers=api.auth())  # other org
    assert_problem(r, 404)


async def test_metrics_count_requests_tokens_and_auth_failures(api: Api) -> None:
    li = (await create(api))["input"]
    await _mint(api, li["id"])
    await api.client.post(f"/v1/live_inputs/{li['id']}/revoke_playback", headers=api.auth())
    await api.client.get("/v1/live_inputs", headers=api.auth("ck_nope"))
    text = (await api.client.get("/metrics")).text
    assert (
        'clutchcall_control_requests_total{method="POST",route="/v1/live_inputs",status="201"} 1.0'
        in text
    )
    assert "clutchcall_control_playback_tokens_minted_total 1.0" in text
    assert 'clutchcall_control_revocations_total{kind="sub"} 1.0' in text
    assert 'clutchcall_control_auth_failures_total{reason="invalid"} 1.0' in text


async def test_oversized_bodies_are_refused(api: Api) -> None:
    big = {"name": "x" * 100_000}
    assert_problem(await api.client.post("/v1/live_inputs", json=big, headers=api.auth()), 413)

    async def chunks() -> Any:  # streamed without Content-Length
        for _ in range(100):
            yield b"x" * 1024

    r = await api.client.post(
        "/v1/live_inputs",
        content=chunks(),
        headers={**api.auth(), "content-type": "application/json"},
    )
    assert_problem(r, 413)
