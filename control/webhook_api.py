"""The webhook routes (``/v1/webhooks``) and the dispatcher's place in the app.

:func:`install_webhooks` is called once by :func:`control.app.create_app`: it
adds the routes, registers the dispatcher as an event sink of the service, and
runs its worker for as long as the app is up (its lifespan).
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from control.errors import Problem, not_found
from control.idempotency import idempotency_dependency
from control.ids import valid_id
from control.models import at, ts
from control.service import ControlService
from control.signing import KeySealer
from control.store import ApiKey
from control.webhook_guard import ForbiddenTarget, resolve_target
from control.webhooks import (
    EVENTS,
    Delivery,
    DueQueue,
    MemoryDueQueue,
    RedisDueQueue,
    RetryPolicy,
    Webhook,
    WebhookDispatcher,
)
from mesh.bus import RedisBus

__all__ = ["install_webhooks"]

EventName = Literal["asset.ready", "asset.errored", "live.started", "live.ended"]
_URL_MAX = 2048
_PORT = r"([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_URL_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~-]+(:{_PORT})?([/?#][^\s\x00-\x1f\x7f]*)?$"


class CreateWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=_URL_MAX,
        pattern=_URL_PATTERN,
        examples=["https://example.com/hooks/clutchcall"],
        description="Where deliveries are POSTed: an absolute http:// or https:// URL.",
    )
    events: list[EventName] | None = Field(
        None, min_length=1, description="Events to send (default: all of them)."
    )


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    created_at: datetime


class WebhookWithSecret(WebhookOut):
    secret: str = Field(
        description="Signs every delivery (ClutchCall-Signature). Shown only in this response."
    )


class WebhookList(BaseModel):
    data: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: str
    event: str
    event_id: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


class DeliveryList(BaseModel):
    data: list[DeliveryOut]


def _hook_out(hook: Webhook) -> WebhookOut:
    return WebhookOut(
        id=hook.id, url=hook.url, events=list(hook.events), created_at=at(hook.created_at)
    )


def _delivery_out(d: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        event=d.event,
        event_id=d.event_id,
        status=d.status,
        attempts=d.attempts,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        next_attempt_at=ts(d.next_attempt_at),
        created_at=at(d.created_at),
        updated_at=at(d.updated_at),
    )


def check_endpoint_url(url: str) -> str:
    """An absolute http(s) URL with a host, else a 422 problem saying what is wrong."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise Problem(422, "invalid-webhook-url", f"url is not a valid URL: {exc}") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise Problem(
            422,
            "invalid-webhook-url",
            f"url must be an http:// or https:// URL, got scheme {parts.scheme or '(none)'!r}",
        )
    if not parts.hostname or any(c.isspace() or ord(c) < 32 for c in url):
        raise Problem(422, "invalid-webhook-url", "url must be an absolute URL with a host")
    return url


async def check_endpoint_target(url: str, *, allow_private: bool) -> None:
    """422 if the URL's host is, or resolves to, an address deliveries may not reach.

    A name that does not resolve (yet) is accepted: every delivery resolves and checks
    it again before connecting (control.webhook_guard)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        async with asyncio.timeout(5):
            await resolve_target(parts.hostname or "", port, allow_private=allow_private)
    except ForbiddenTarget as exc:
        raise Problem(
            422, "webhook-target-forbidden", str(exc), title="Webhook Target Forbidden"
        ) from exc
    except (OSError, TimeoutError, UnicodeError):
        pass


def _queue(service: ControlService) -> DueQueue:
    bus = service.bus
    if isinstance(bus, RedisBus):
        return RedisDueQueue(bus.url)
    return MemoryDueQueue()


def install_webhooks(
    app: FastAPI,
    service: ControlService,
    principal: Callable[..., Awaitable[ApiKey]],
    *,
    background: bool = True,
) -> WebhookDispatcher:
    """Routes, event sink and worker of the webhooks (see the module docstring)."""
    settings = service.settings
    policy = RetryPolicy(
        max_attempts=settings.webhook_max_attempts,
        base=settings.webhook_retry_base,
        timeout=settings.webhook_timeout,
    )
    dispatcher = WebhookDispatcher(
        service.repo,
        KeySealer(settings.key_secret),
        _queue(service),
        policy,
        allow_private=settings.webhook_allow_private,
    )
    service.event_sinks.append(dispatcher.enqueue)
    app.state.webhooks = dispatcher

    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            worker = asyncio.ensure_future(dispatcher.run()) if background else None
            try:
                yield state
            finally:
                if worker is not None:
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
                await dispatcher.aclose()

    app.router.lifespan_context = lifespan
    key_dep = Annotated[ApiKey, Depends(principal)]

    async def _hook(org_id: str, hook_id: str) -> Webhook:
        hook = None
        if valid_id(hook_id, "wh"):
            hook = await asyncio.to_thread(dispatcher.store.get, org_id, hook_id)
        if hook is None:
            raise not_found("webhook", hook_id[:64])
        return hook

    @app.post(
        "/v1/webhooks",
        status_code=201,
        tags=["webhooks"],
        dependencies=[Depends(idempotency_dependency(principal))],  # control.idempotency
    )
    async def create_webhook(body: CreateWebhook, key: key_dep) -> WebhookWithSecret:
        url = check_endpoint_url(body.url)
        await check_endpoint_target(url, allow_private=settings.webhook_allow_private)
        events = list(dict.fromkeys(body.events)) if body.events else list(EVENTS)
        hook, secret = await dispatcher.create_endpoint(key.org_id, url, events)
        return WebhookWithSecret(**_hook_out(hook).model_dump(), secret=secret)

    @app.get("/v1/webhooks", tags=["webhooks"])
    async def list_webhooks(key: key_dep) -> WebhookList:
        hooks = await asyncio.to_thread(dispatcher.store.endpoints, key.org_id)
        return WebhookList(data=[_hook_out(h) for h in hooks])

    @app.get("/v1/webhooks/{webhook_id}", tags=["webhooks"])
    async def get_webhook(webhook_id: str, key: key_dep) -> WebhookOut:
        return _hook_out(await _hook(key.org_id, webhook_id))

    @app.delete("/v1/webhooks/{webhook_id}", status_code=204, tags=["webhooks"])
    async def delete_webhook(webhook_id: str, key: key_dep) -> Response:
        hook = await _hook(key.org_id, webhook_id)
        await asyncio.to_thread(dispatcher.store.delete, key.org_id, hook.id)
        return Response(status_code=204)

    @app.get("/v1/webhooks/{webhook_id}/deliveries", tags=["webhooks"])
    async def list_webhook_deliveries(
        webhook_id: str,
        key: key_dep,
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
    ) -> DeliveryList:
        """The last delivery attempts, newest first."""
        hook = await _hook(key.org_id, webhook_id)
        rows = await asyncio.to_thread(dispatcher.store.deliveries, hook.id, limit=limit)
        return DeliveryList(data=[_delivery_out(d) for d in rows])

    return dispatcher
