"""Verify a webhook delivery of the control plane.

Every delivery carries ``ClutchCall-Signature: t=<unix seconds>,v1=<hex>``
where ``<hex>`` is HMAC-SHA256 keyed with the endpoint's secret over
``f"{t}."`` followed by the raw request body. Verify the raw bytes, before any
JSON parsing::

    event = verify_webhook(secret, request.headers["ClutchCall-Signature"], raw_body)
    if event["type"] == "asset.ready": ...

A timestamp further than ``tolerance`` seconds from now is refused (replays).
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from clutchcall.streams._errors import StreamsError
from clutchcall.streams._http import path_id
from clutchcall.streams._models import parse_time
from clutchcall.streams._plan import Call, Plan, idempotent

if TYPE_CHECKING:
    from clutchcall.streams._aio import AsyncStreams
    from clutchcall.streams._client import Streams

__all__ = [
    "SIGNATURE_HEADER",
    "AsyncWebhooks",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookVerificationError",
    "Webhooks",
    "verify_webhook",
]

SIGNATURE_HEADER = "ClutchCall-Signature"


class WebhookVerificationError(StreamsError):
    """The signature header is missing, malformed, stale, or does not match the body."""


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError as exc:
                raise WebhookVerificationError(f"bad timestamp {value!r}") from exc
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookVerificationError("the signature header needs t=<unix> and v1=<hex>")
    return timestamp, signatures


def verify_webhook(
    secret: str,
    header: str | None,
    body: bytes | str,
    tolerance: float = 300,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """The delivery's event (parsed JSON) if ``header`` signs ``body`` with ``secret``
    within ``tolerance`` seconds of ``now``; else :class:`WebhookVerificationError`."""
    if not secret:
        raise WebhookVerificationError("no webhook secret given")
    if not header:
        raise WebhookVerificationError(f"no {SIGNATURE_HEADER} header")
    raw = body.encode() if isinstance(body, str) else bytes(body)
    timestamp, signatures = _parse(header)
    current = time.time() if now is None else now
    if tolerance > 0 and abs(current - timestamp) > tolerance:
        raise WebhookVerificationError(
            f"timestamp {timestamp} is more than {tolerance:g} s from now (replayed or clock skew)"
        )
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256)
    digest = expected.hexdigest()
    if not any(hmac.compare_digest(digest, s.strip().lower()) for s in signatures):
        raise WebhookVerificationError("signature does not match the body")
    try:
        event = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WebhookVerificationError(f"signed body is not JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise WebhookVerificationError("signed body is not a JSON object")
    return event


# --- managing endpoints: streams.webhooks ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """An endpoint; ``secret`` only in what :meth:`Webhooks.create` returns (shown once)."""

    id: str
    url: str
    events: tuple[str, ...]
    created_at: datetime
    secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WebhookEndpoint:
        return cls(
            id=data["id"],
            url=data["url"],
            events=tuple(data.get("events") or ()),
            created_at=_time(data["created_at"]),
            secret=data.get("secret"),
        )


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One event sent (or being sent) to an endpoint, with its last attempt."""

    id: str
    event: str
    event_id: str
    status: str  # pending | delivered | failed
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WebhookDelivery:
        return cls(
            id=data["id"],
            event=data["event"],
            event_id=data.get("event_id", ""),
            status=data["status"],
            attempts=int(data.get("attempts") or 0),
            last_status_code=data.get("last_status_code"),
            last_error=data.get("last_error"),
            next_attempt_at=parse_time(data.get("next_attempt_at")),
            created_at=_time(data["created_at"]),
            updated_at=_time(data["updated_at"]),
        )


def _time(value: Any) -> datetime:
    parsed = parse_time(value)
    if parsed is None:
        raise ValueError("missing time")
    return parsed


class WebhookOps:
    """Each call once, as a plan (``_plan``) both clients run."""

    @staticmethod
    def create(
        url: str, events: builtins.list[str] | None, key: str | None = None
    ) -> Plan[WebhookEndpoint]:
        body: dict[str, Any] = {"url": url}
        if events is not None:
            body["events"] = builtins.list(events)
        data = yield from idempotent("POST", "/v1/webhooks", body, key=key)  # retried safely
        return WebhookEndpoint.from_json(data)

    @staticmethod
    def list() -> Plan[builtins.list[WebhookEndpoint]]:
        data = yield Call("GET", "/v1/webhooks")
        return [WebhookEndpoint.from_json(d) for d in data["data"]]

    @staticmethod
    def get(id: str) -> Plan[WebhookEndpoint]:
        return WebhookEndpoint.from_json((yield Call("GET", f"/v1/webhooks/{path_id(id)}")))

    @staticmethod
    def delete(id: str) -> Plan[None]:
        yield Call("DELETE", f"/v1/webhooks/{path_id(id)}")

    @staticmethod
    def deliveries(id: str, limit: int | None) -> Plan[builtins.list[WebhookDelivery]]:
        params = {} if limit is None else {"limit": limit}
        data = yield Call("GET", f"/v1/webhooks/{path_id(id)}/deliveries", params=params)
        return [WebhookDelivery.from_json(d) for d in data["data"]]


class Webhooks:
    """``streams.webhooks``: endpoints that receive signed events (docs/webhooks.md)."""

    def __init__(self, streams: Streams) -> None:
        self._streams = streams

    def create(
        self, *, url: str, events: list[str] | None = None, idempotency_key: str | None = None
    ) -> WebhookEndpoint:
        """A new endpoint; keep ``.secret`` (to verify deliveries): it is shown only now."""
        return self._streams._run(WebhookOps.create(url, events, idempotency_key))

    def list(self) -> list[WebhookEndpoint]:
        return self._streams._run(WebhookOps.list())

    def get(self, id: str) -> WebhookEndpoint:
        return self._streams._run(WebhookOps.get(id))

    def delete(self, id: str) -> None:
        self._streams._run(WebhookOps.delete(id))

    def deliveries(self, id: str, *, limit: int | None = None) -> builtins.list[WebhookDelivery]:
        """The endpoint's last deliveries, newest first."""
        return self._streams._run(WebhookOps.deliveries(id, limit))


class AsyncWebhooks:
    """``streams.webhooks`` of :class:`AsyncStreams` (see :class:`Webhooks`)."""

    def __init__(self, streams: AsyncStreams) -> None:
        self._streams = streams

    async def create(
        self, *, url: str, events: list[str] | None = None, idempotency_key: str | None = None
    ) -> WebhookEndpoint:
        return await self._streams._run(WebhookOps.create(url, events, idempotency_key))

    async def list(self) -> list[WebhookEndpoint]:
        return await self._streams._run(WebhookOps.list())

    async def get(self, id: str) -> WebhookEndpoint:
        return await self._streams._run(WebhookOps.get(id))

    async def delete(self, id: str) -> None:
        await self._streams._run(WebhookOps.delete(id))

    async def deliveries(
        self, id: str, *, limit: int | None = None
    ) -> builtins.list[WebhookDelivery]:
        return await self._streams._run(WebhookOps.deliveries(id, limit))
