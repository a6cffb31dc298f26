"""streams.webhooks on both clients, against the real control plane (uvicorn, real HTTP)."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest

from clutchcall.streams import (
    AsyncStreams,
    AsyncWebhooks,
    NotFound,
    Streams,
    ValidationError,
    Webhooks,
    verify_webhook,
)
from tests.control.webhook_receiver import Receiver
from tests.vod.servekit import served

pytestmark = pytest.mark.timeout(60)


async def test_sync_webhooks_create_list_get_deliveries_delete(tmp_path: Path) -> None:
    receiver = Receiver()
    try:
        async with served(tmp_path, webhook_allow_private=True) as srv:  # a local receiver

            def manage() -> tuple[str, str]:
                with Streams(base_url=srv.base_url, api_key=srv.api_key) as streams:
                    hook = streams.webhooks.create(url=receiver.url, events=["asset.ready"])
                    assert hook.id.startswith("wh_") and hook.secret is not None
                    assert "whsec_" not in repr(hook)
                    listed = streams.webhooks.list()
                    assert [h.id for h in listed] == [hook.id] and listed[0].secret is None
                    assert streams.webhooks.get(hook.id).events == ("asset.ready",)
                    with pytest.raises(ValidationError):
                        streams.webhooks.create(url="ftp://example.com/x")
                    return hook.id, hook.secret

            hook_id, secret = await asyncio.to_thread(manage)
            await srv.service.emit_event(await _org(srv), "asset.ready", {"id": "as_1"})
            dispatcher = srv.service.event_sinks[0].__self__  # type: ignore[attr-defined]
            assert await dispatcher.run_once() == 1

            def check() -> None:
                with Streams(base_url=srv.base_url, api_key=srv.api_key) as streams:
                    [delivery] = streams.webhooks.deliveries(hook_id, limit=5)
                    assert delivery.status == "delivered" and delivery.attempts == 1
                    assert delivery.last_status_code == 200 and delivery.event == "asset.ready"
                    streams.webhooks.delete(hook_id)
                    with pytest.raises(NotFound):
                        streams.webhooks.get(hook_id)

            await asyncio.to_thread(check)
        [req] = receiver.requests
        assert verify_webhook(secret, req.headers["ClutchCall-Signature"], req.body)["data"] == {
            "id": "as_1"
        }
    finally:
        receiver.close()


async def test_async_webhooks(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        async with AsyncStreams(base_url=srv.base_url, api_key=srv.api_key) as streams:
            hook = await streams.webhooks.create(url="https://example.com/h")
            assert len(hook.events) == 4
            assert [h.id for h in await streams.webhooks.list()] == [hook.id]
            assert await streams.webhooks.deliveries(hook.id) == []
            await streams.webhooks.delete(hook.id)
            assert await streams.webhooks.list() == []


def test_sync_and_async_webhooks_have_the_same_api() -> None:
    def api(cls: type) -> dict[str, list[str]]:
        return {
            name: list(inspect.signature(getattr(cls, name)).parameters)
            for name in dir(cls)
            if not name.startswith("_")
        }

    assert api(Webhooks) == api(AsyncWebhooks)
    assert all(inspect.iscoroutinefunction(getattr(AsyncWebhooks, n)) for n in api(AsyncWebhooks))


async def _org(srv: object) -> str:
    service = srv.service  # type: ignore[attr-defined]
    key = await service.authenticate(srv.api_key)  # type: ignore[attr-defined]
    return str(key.org_id)
