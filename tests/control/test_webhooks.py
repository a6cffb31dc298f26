"""Webhooks: the API, signed deliveries to a real HTTP endpoint, retries with backoff,
retries shared by two nodes through Redis, and the live.started/live.ended events."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clutchcall.streams import WebhookVerificationError, verify_webhook
from control.webhooks import SIGNATURE_HEADER, Delivery, MemoryDueQueue, WebhookDispatcher
from mesh.bus import Bus, MemoryBus
from tests.control.conftest import Api, open_api
from tests.control.webhook_receiver import Receiver

pytestmark = pytest.mark.timeout(90)

# The receiver listens on 127.0.0.1: deliveries to it need private targets allowed.
local_api = functools.partial(open_api, webhook_allow_private=True)


@pytest.fixture
def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    yield r  # type: ignore[misc]
    r.close()


@contextlib.asynccontextmanager
async def worker(dispatcher: WebhookDispatcher) -> AsyncIterator[None]:
    task = asyncio.ensure_future(dispatcher.run(poll=0.1))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def dispatcher_of(api: Api) -> WebhookDispatcher:
    d: WebhookDispatcher = api.app.state.webhooks
    return d


async def settled(api: Api, hook_id: object, n: int = 1) -> list[dict[str, object]]:
    """The endpoint's deliveries once ``n`` of them are no longer pending (the worker
    records an attempt right after the endpoint answered)."""
    for _ in range(200):
        r = await api.client.get(f"/v1/webhooks/{hook_id}/deliveries", headers=api.auth())
        rows: list[dict[str, object]] = r.json()["data"]
        if sum(d["status"] != "pending" for d in rows) >= n:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"deliveries still pending: {rows}")


async def create_hook(api: Api, url: str, **body: object) -> dict[str, object]:
    r = await api.client.post("/v1/webhooks", json={"url": url, **body}, headers=api.auth())
    assert r.status_code == 201, r.text
    data: dict[str, object] = r.json()
    return data


async def test_webhook_api_create_list_get_delete(api: Api) -> None:
    hook = await create_hook(api, "https://example.com/hook")
    assert str(hook["id"]).startswith("wh_")
    assert str(hook["secret"]).startswith("whsec_")
    assert hook["events"] == ["asset.ready", "asset.errored", "live.started", "live.ended"]
    listed = (await api.client.get("/v1/webhooks", headers=api.auth())).json()["data"]
    assert [h["id"] for h in listed] == [hook["id"]]
    assert "secret" not in listed[0]  # shown once
    got = await api.client.get(f"/v1/webhooks/{hook['id']}", headers=api.auth())
    assert got.status_code == 200 and got.json()["url"] == "https://example.com/hook"
    # Another org sees nothing.
    _other, other_key = await api.new_org()
    for method in ("GET", "DELETE"):
        r = await api.client.request(
            method, f"/v1/webhooks/{hook['id']}", headers=api.auth(other_key)
        )
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/problem+json")
    r = await api.client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=api.auth(other_key))
    assert r.status_code == 404
    assert (await api.client.get("/v1/webhooks", headers=api.auth(other_key))).json()["data"] == []
    r = await api.client.delete(f"/v1/webhooks/{hook['id']}", headers=api.auth())
    assert r.status_code == 204
    r = await api.client.get(f"/v1/webhooks/{hook['id']}", headers=api.auth())
    assert r.status_code == 404
    assert (await api.client.get("/v1/webhooks")).status_code == 401


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "example.com/hook",
     "http://", "https://exa mple.com/", "http://example.com:99999/"],
)  # fmt: skip
async def test_webhook_url_must_be_http(api: Api, url: str) -> None:
    r = await api.client.post("/v1/webhooks", json={"url": url}, headers=api.auth())
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["type"].endswith(("invalid-webhook-url", "validation")) and problem["detail"]
    assert "url" in problem["detail"]


async def test_webhook_unknown_event_refused(api: Api) -> None:
    r = await api.client.post(
        "/v1/webhooks",
        json={"url": "https://example.com/h", "events": ["asset.exploded"]},
        headers=api.auth(),
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_delivery_is_signed_and_retried_with_backoff(
    db_url: str, redis_bus: Bus, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]  # fails twice, then 200
    async with local_api(db_url, redis_bus, webhook_retry_base=0.3) as api:
        hook = await create_hook(api, receiver.url, events=["asset.ready"])
        other = await create_hook(api, receiver.url + "?other", events=["live.ended"])
        dispatcher = dispatcher_of(api)
        async with worker(dispatcher):
            await api.service.emit_event(
                api.org_id, "asset.ready", {"id": "as_1", "status": "ready"}
            )
            got = await receiver.wait_for(lambda rs: any(r.answered == 200 for r in rs))
            [delivery] = await settled(api, hook["id"])
        assert [r.answered for r in got] == [500, 503, 200]
        assert all(r.path == "/hook" for r in got)  # the live.ended endpoint got nothing
        # Exponential: ~0.3 s then ~0.6 s (10 % jitter).
        gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
        # The second wait is at least twice the base (never just the poll interval).
        assert gaps[0] >= 0.25 and gaps[1] >= 0.5, gaps
        last = got[-1]
        event = verify_webhook(str(hook["secret"]), last.headers[SIGNATURE_HEADER], last.body)
        assert event["type"] == "asset.ready" and event["org_id"] == api.org_id
        assert event["data"] == {"id": "as_1", "status": "ready"}
        assert last.headers["ClutchCall-Event"] == "asset.ready"
        # Same event id on every attempt, so receivers can de-duplicate.
        assert len({json.loads(r.body)["id"] for r in got}) == 1
        with pytest.raises(WebhookVerificationError):
            verify_webhook(str(other["secret"]), last.headers[SIGNATURE_HEADER], last.body)
        with pytest.raises(WebhookVerificationError):
            verify_webhook(str(hook["secret"]), last.headers[SIGNATURE_HEADER], last.body + b" ")
        assert delivery["status"] == "delivered" and delivery["attempts"] == 3
        assert delivery["last_status_code"] == 200 and delivery["event"] == "asset.ready"
        assert delivery["next_attempt_at"] is None and delivery["last_error"] is None
        r = await api.client.get(f"/v1/webhooks/{other['id']}/deliveries", headers=api.auth())
        assert r.json()["data"] == []


async def test_delivery_fails_after_max_attempts(sqlite_url: str, receiver: Receiver) -> None:
    receiver.default = 500
    async with local_api(
        sqlite_url, MemoryBus(), webhook_retry_base=0.05, webhook_max_attempts=3
    ) as api:
        hook = await create_hook(api, receiver.url)
        dispatcher = dispatcher_of(api)
        assert isinstance(dispatcher.queue, MemoryDueQueue)
        async with worker(dispatcher):
            await api.service.emit_event(api.org_id, "asset.errored", {"id": "as_2"})
            await receiver.wait_for(lambda rs: len(rs) >= 3)
            [delivery] = await settled(api, hook["id"])
        assert delivery["status"] == "failed" and delivery["attempts"] == 3
        assert delivery["last_status_code"] == 500 and "HTTP 500" in delivery["last_error"]
        assert len(receiver.requests) == 3


async def test_unreachable_endpoint_is_recorded(sqlite_url: str) -> None:
    closed = Receiver()
    url = closed.url
    closed.close()  # nothing listens there any more
    async with local_api(sqlite_url, MemoryBus(), webhook_max_attempts=1) as api:
        hook = await create_hook(api, url)
        await api.service.emit_event(api.org_id, "asset.ready", {"id": "as_3"})
        assert await dispatcher_of(api).run_once() == 1
        r = await api.client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=api.auth())
        [delivery] = r.json()["data"]
        assert delivery["status"] == "failed" and delivery["last_status_code"] is None
        assert "Connect" in delivery["last_error"]


async def test_retries_hold_across_nodes_through_redis(
    tmp_path: Path, redis_bus: Bus, receiver: Receiver
) -> None:
    """Node A records the events; its worker is down. Node B's and C's workers (same
    database, same Redis) send each delivery exactly once, retries included."""
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    receiver.statuses = [500] * 3
    async with (
        local_api(db, redis_bus, webhook_retry_base=0.2) as a,
        local_api(db, redis_bus, webhook_retry_base=0.2) as b,
        local_api(db, redis_bus, webhook_retry_base=0.2) as c,
    ):
        hook = await create_hook(a, receiver.url)
        for i in range(6):
            await a.service.emit_event(a.org_id, "asset.ready", {"id": f"as_{i}"})
        async with worker(dispatcher_of(b)), worker(dispatcher_of(c)):
            got = await receiver.wait_for(lambda rs: sum(r.answered == 200 for r in rs) >= 6)
            rows = await settled(a, hook["id"], 6)
            await asyncio.sleep(0.5)  # any duplicate would arrive now
        ok = [json.loads(r.body)["data"]["id"] for r in receiver.requests if r.answered == 200]
        assert sorted(ok) == [f"as_{i}" for i in range(6)], got
        assert len(receiver.requests) == 9  # 6 + the 3 failures retried once each
        assert {d["status"] for d in rows} == {"delivered"}
        assert sorted(d["attempts"] for d in rows) == [1, 1, 1, 2, 2, 2]


async def test_pending_deliveries_survive_a_restart(sqlite_url: str, receiver: Receiver) -> None:
    async with local_api(sqlite_url, MemoryBus()) as first:
        hook = await create_hook(first, receiver.url)
        await first.service.emit_event(first.org_id, "asset.ready", {"id": "as_9"})
        org, key = first.org_id, first.api_key
    # A new process: empty in-memory queue, same database.
    async with local_api(sqlite_url, MemoryBus()) as second:
        dispatcher = dispatcher_of(second)
        assert await dispatcher.restore() == 1
        assert await dispatcher.run_once() == 1
        [req] = receiver.requests
        assert (
            verify_webhook(str(hook["secret"]), req.headers[SIGNATURE_HEADER], req.body)["org_id"]
            == org
        )
        r = await second.client.get(
            f"/v1/webhooks/{hook['id']}/deliveries", headers=second.auth(key)
        )
        assert r.json()["data"][0]["status"] == "delivered"


async def test_live_started_and_ended_events(sqlite_url: str, receiver: Receiver) -> None:
    async with local_api(sqlite_url, MemoryBus()) as api:
        hook = await create_hook(api, receiver.url, events=["live.started", "live.ended"])
        li, _key = await api.service.create_input(api.org_id, "Cam", "fmp4")
        ext = li.external_input_id
        dispatcher = dispatcher_of(api)
        assert await api.service.apply_status({"external_input_id": ext, "status": "live"})
        # A repeated report is no transition: no second event.
        assert await api.service.apply_status({"external_input_id": ext, "status": "live"})
        await dispatcher.run_once()
        assert await api.service.apply_status({"external_input_id": ext, "status": "idle"})
        await dispatcher.run_once()
        events = [
            verify_webhook(str(hook["secret"]), r.headers[SIGNATURE_HEADER], r.body)
            for r in receiver.requests
        ]
        assert [e["type"] for e in events] == ["live.started", "live.ended"]
        assert events[0]["data"]["external_input_id"] == ext
        assert events[0]["data"]["id"] == li.id and events[1]["data"]["status"] == "idle"


def test_verify_webhook_rejects_stale_and_malformed() -> None:
    import hashlib
    import hmac

    body = b'{"type":"asset.ready"}'
    secret = "whsec_test"
    t = 1_700_000_000
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    header = f"t={t},v1={sig}"
    assert verify_webhook(secret, header, body, now=t + 10)["type"] == "asset.ready"
    assert verify_webhook(secret, f"t={t},v1=00,v1={sig}", body, now=t)["type"] == "asset.ready"
    with pytest.raises(WebhookVerificationError, match="from now"):
        verify_webhook(secret, header, body, now=t + 301)
    for bad in ("", "v1=abc", f"t=x,v1={sig}", f"t={t}"):
        with pytest.raises(WebhookVerificationError):
            verify_webhook(secret, bad, body, now=t)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_webhook("whsec_other", header, body, now=t)


async def test_a_redis_that_lost_the_queue_is_refilled_from_the_database(
    sqlite_url: str, redis_bus: Bus, receiver: Receiver
) -> None:
    """A delivery row that never reached the sorted set (Redis restarted empty, or was
    down at enqueue) is sent by a worker that is already running, from its refill."""
    async with local_api(sqlite_url, redis_bus) as api:
        hook = await create_hook(api, receiver.url)
        dispatcher = dispatcher_of(api)
        task = asyncio.ensure_future(dispatcher.run(poll=0.05, refill_every=0.3))
        try:
            await asyncio.wait_for(dispatcher.refilled.wait(), 5)  # past the first refill
            now = time.time()
            body = json.dumps({"id": "evt_1", "type": "asset.ready", "data": {}})
            row = Delivery("dl_lost1", str(hook["id"]), api.org_id, "asset.ready", "evt_1",
                           body, "pending", 0, None, None, now, now, now)  # fmt: skip
            assert await asyncio.to_thread(dispatcher.store.insert_delivery, row)
            assert await dispatcher.queue.next_due() is None  # not in Redis
            [delivery] = await settled(api, hook["id"])
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert delivery["status"] == "delivered" and len(receiver.requests) == 1
        # Settled deliveries past the retention are purged; pending ones never are.
        store = dispatcher.store
        assert await asyncio.to_thread(store.purge, time.time() - 60) == 0
        assert await asyncio.to_thread(store.purge, time.time() + 1) == 1
