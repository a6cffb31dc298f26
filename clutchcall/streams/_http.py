"""What the sync and async clients share: configuration, request shape, response checks."""

from __future__ import annotations

import json
import random
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

import httpx

from clutchcall.streams._errors import ApiError, ConfigurationError, ConnectionFailed, error_for

__all__ = [
    "DEFAULT_RETRY",
    "IDEMPOTENCY_HEADER",
    "ClientBase",
    "ClientConfig",
    "RetryPolicy",
    "check_response",
    "idempotency_key",
    "path_id",
    "resolve_config",
    "retry_worthy",
]

USER_AGENT = "clutchcall-streams-python/0.1"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
_KEY = re.compile(r"[\x20-\x7e]{1,255}")
# Answers after which a create is retried with its Idempotency-Key: the gateway or the
# control plane had a moment (502/503/504; 5xx answers are never stored, so the retry runs
# the request), or the first attempt is still running (409 idempotency-key-in-use).
RETRY_STATUSES: Final = frozenset({502, 503, 504})
# A connection cut, refused or timed out: the request may or may not have run.
_RETRY_TRANSPORT: Final = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)


def idempotency_key(given: str | None) -> str:
    """``given`` when it is a valid key (1-255 printable ASCII), a new UUID v4 for None."""
    if given is None:
        return str(uuid.uuid4())
    if not isinstance(given, str) or _KEY.fullmatch(given) is None:
        raise ConfigurationError(
            f"idempotency_key must be 1 to 255 printable ASCII characters, got {given!r}"
        )
    return given


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a create is retried under its Idempotency-Key (``Streams(retry=...)``).

    Up to ``retries`` more attempts (0: none) after a cut connection, a timeout, an answer
    whose status is in ``statuses`` (502, 503, 504 by default) or the 409 "still in
    progress"; waiting ``base * 2**n`` s (at most ``cap``, with jitter), or the
    ``Retry-After`` the server names (at most ``cap``). Only requests sent with an
    Idempotency-Key are retried (a retry replays the first answer, never runs twice).
    """

    retries: int = 4
    base: float = 0.25
    cap: float = 5.0
    statuses: frozenset[int] = RETRY_STATUSES

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigurationError(f"retries must be an int >= 0, got {self.retries!r}")
        for name in ("base", "cap"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value < float("inf")
            ):
                raise ConfigurationError(f"{name} must be a finite number >= 0, got {value!r}")
        try:
            statuses = frozenset(self.statuses)
        except TypeError:
            raise ConfigurationError(
                f"statuses must be HTTP statuses (400-599), got {self.statuses!r}"
            ) from None
        if any(
            isinstance(s, bool) or not isinstance(s, int) or not 400 <= s <= 599 for s in statuses
        ):
            raise ConfigurationError(
                f"statuses must be HTTP statuses (400-599), got {self.statuses!r}"
            )
        object.__setattr__(self, "statuses", statuses)

    def worthy(self, exc: BaseException) -> bool:
        """A failure after which the same request (same key) is worth sending again."""
        if isinstance(exc, ConnectionFailed):
            return isinstance(exc.__cause__, _RETRY_TRANSPORT)
        if isinstance(exc, ApiError):
            return exc.status in self.statuses or (
                exc.status == 409 and exc.type.endswith("/idempotency-key-in-use")
            )
        return False

    def delay(self, attempt: int, exc: BaseException) -> float:
        if isinstance(exc, ApiError):
            named = exc.headers.get("retry-after")
            if named is not None:
                try:
                    return min(self.cap, max(0.0, float(named)))
                except ValueError:
                    pass
        return min(self.cap, self.base * 2 ** max(0, attempt - 1)) * random.uniform(0.8, 1.0)


#: The retries of every create unless the client is given another policy.
DEFAULT_RETRY: Final = RetryPolicy()


def retry_worthy(exc: BaseException) -> bool:
    """A failure after which the same request is worth sending again (default policy)."""
    return DEFAULT_RETRY.worthy(exc)


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where and how to reach the control plane, plus the data-plane settings."""

    base_url: str | None
    api_key: str | None = field(repr=False)  # secrets never show up in logs or tracebacks
    org_id: str | None
    relay_url: str | None
    token: str | None = field(repr=False)
    timeout: float
    retry: RetryPolicy = DEFAULT_RETRY

    def control(self) -> tuple[str, dict[str, str]]:
        """Base URL and headers for a control-plane call (or a clear error)."""
        if not self.base_url:
            raise ConfigurationError(
                "this Streams client has no base_url: pass Streams(base_url=..., api_key=...) "
                "for control-plane calls"
            )
        if not self.api_key:
            raise ConfigurationError("control-plane calls need Streams(api_key=...)")
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json, application/problem+json",
            "User-Agent": USER_AGENT,
        }
        if self.org_id:
            headers["X-ClutchCall-Org"] = self.org_id
        return self.base_url.rstrip("/"), headers


def resolve_config(
    base_url: str | None,
    api_key: str | None,
    org_id: str | None,
    relay_url: str | None,
    token: str | None,
    api_base: str | None,
    timeout: float,
    retry: RetryPolicy | None = None,
) -> ClientConfig:
    if api_base is not None and base_url is not None and api_base != base_url:
        raise ConfigurationError("pass either base_url or api_base (its alias), not both")
    base = base_url if base_url is not None else api_base
    if base and not base.startswith(("http://", "https://")):
        raise ConfigurationError(f"base_url must be an http(s) URL, got {base!r}")
    if timeout <= 0:
        raise ConfigurationError("timeout must be positive")
    if retry is None:
        retry = DEFAULT_RETRY
    elif not isinstance(retry, RetryPolicy):
        raise ConfigurationError(f"retry must be a RetryPolicy, got {retry!r}")
    return ClientConfig(base or None, api_key, org_id, relay_url, token, timeout, retry)


class ClientBase:
    """What :class:`Streams` and :class:`AsyncStreams` share besides the plans they run."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        org_id: str | None,
        relay_url: str | None,
        token: str | None,
        api_base: str | None,
        timeout: float,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.config: ClientConfig = resolve_config(
            base_url, api_key, org_id, relay_url, token, api_base, timeout, retry
        )

    @property
    def base_url(self) -> str | None:
        return self.config.base_url

    @property
    def org_id(self) -> str | None:
        return self.config.org_id

    @property
    def relay_url(self) -> str | None:
        return self.config.relay_url

    @property
    def token(self) -> str | None:
        return self.config.token

    @staticmethod
    def _unreachable(method: str, url: str, exc: httpx.TransportError) -> ConnectionFailed:
        return ConnectionFailed(f"{method} {url}: {exc}")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.config.base_url!r}, "
            f"org_id={self.config.org_id!r}, relay_url={self.config.relay_url!r})"
        )


def path_id(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"an id must be a non-empty string, got {value!r}")
    return quote(value, safe="")


def check_response(response: httpx.Response) -> Any:
    """The JSON body of a success (None for 204), else the matching :class:`ApiError`."""
    if response.is_success:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except json.JSONDecodeError as exc:
            raise ApiError(
                response.status_code,
                "Invalid Response",
                f"the control plane sent a body that is not JSON: {exc}",
            ) from exc
    body: dict[str, Any] = {}
    try:
        parsed = response.json()
        if isinstance(parsed, dict):
            body = parsed
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    status = response.status_code
    title = str(body.get("title") or response.reason_phrase or "Error")
    detail = str(body.get("detail") or (response.text[:200] if not body else ""))
    cls = error_for(status)
    raise cls(
        status,
        title,
        detail,
        type=str(body.get("type") or "about:blank"),
        body=body,
        headers={k.lower(): v for k, v in response.headers.items()},
    )
