"""Typed errors of the Streams SDK.

Every failed control-plane call raises an :class:`ApiError` subclass carrying
the RFC 9457 problem the server returned (``status``, ``type``, ``title``,
``detail``); network failures raise :class:`ConnectionFailed`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "ConfigurationError",
    "Conflict",
    "ConnectionFailed",
    "NotFound",
    "RateLimited",
    "ServerError",
    "StreamsError",
    "Unauthorized",
    "ValidationError",
    "error_for",
]


class StreamsError(Exception):
    """Base class of every error the SDK raises."""


class ConfigurationError(StreamsError, ValueError):
    """The client lacks something the call needs (e.g. no base_url for a control-plane call)."""


class ConnectionFailed(StreamsError):
    """The control plane could not be reached (DNS, refused, timeout, TLS)."""


class ApiError(StreamsError):
    """The control plane answered with an error (an RFC 9457 problem)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        type: str = "about:blank",
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.body = body or {}
        self.headers = headers or {}


class Unauthorized(ApiError):
    """401: missing, wrong or revoked API key."""


class NotFound(ApiError):
    """404: no such resource in this org (other orgs' resources look the same)."""


class Conflict(ApiError):
    """409: the resource already exists."""


class ValidationError(ApiError):
    """400/422: the request was refused as invalid; ``errors`` lists what was wrong."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        errors = self.body.get("errors")
        return list(errors) if isinstance(errors, list) else []


class RateLimited(ApiError):
    """429: too many failed authentications; retry after ``retry_after`` seconds."""

    @property
    def retry_after(self) -> float | None:
        value = self.headers.get("retry-after")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


class ServerError(ApiError):
    """5xx: the control plane (or its database/bus) failed; usually worth a retry."""


def error_for(status: int) -> type[ApiError]:
    if status == 401:
        return Unauthorized
    if status == 404:
        return NotFound
    if status == 409:
        return Conflict
    if status in (400, 422):
        return ValidationError
    if status == 429:
        return RateLimited
    if status >= 500:
        return ServerError
    return ApiError
