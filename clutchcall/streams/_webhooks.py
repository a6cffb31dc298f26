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

import hashlib
import hmac
import json
import time
from typing import Any

from clutchcall.streams._errors import StreamsError

__all__ = ["SIGNATURE_HEADER", "WebhookVerificationError", "verify_webhook"]

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
