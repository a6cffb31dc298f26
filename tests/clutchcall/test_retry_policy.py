"""``Streams(retry=RetryPolicy(...))`` / ``AsyncStreams(retry=...)``: how the creates are
retried under their Idempotency-Key, configurable like the TypeScript ControlClient's
``retry`` option; defaults unchanged, and still only requests with a key are retried.

A mock transport answers every request with a chosen status and records what was sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from clutchcall.streams import (
    ApiError,
    AsyncStreams,
    ConfigurationError,
    RetryPolicy,
    ServerError,
    Streams,
)

BASE = "http://control.test"


class Recorder:
    def __init__(self, status: int) -> None:
        self.status = status
        self.sent: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return httpx.Response(
            self.status,
            json={"type": "about:blank", "title": "x", "status": self.status},
            headers={"content-type": "application/problem+json"},
        )

    def keys(self) -> list[str | None]:
        return [r.headers.get("idempotency-key") for r in self.sent]


def sync_calls(recorder: Recorder, retry: RetryPolicy | None) -> Callable[[str], None]:
    def call(what: str) -> None:
        client = httpx.Client(transport=httpx.MockTransport(recorder))
        with Streams(base_url=BASE, api_key="k", retry=retry, http_client=client) as streams:
            if what == "create":
                streams.live_inputs.create(name="A")
            else:
                streams.live_inputs.get(id="li_abc")

    return call


def async_calls(recorder: Recorder, retry: RetryPolicy | None) -> Callable[[str], None]:
    import asyncio

    async def main(what: str) -> None:
        client = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
        async with AsyncStreams(
            base_url=BASE, api_key="k", retry=retry, http_client=client
        ) as streams:
            if what == "create":
                await streams.live_inputs.create(name="A")
            else:
                await streams.live_inputs.get(id="li_abc")

    return lambda what: asyncio.run(main(what))


CLIENTS = pytest.mark.parametrize("client", [sync_calls, async_calls], ids=["sync", "async"])


@CLIENTS
def test_a_create_is_sent_retries_plus_one_times_under_one_key(client: Any) -> None:
    recorder = Recorder(503)
    with pytest.raises(ServerError):
        client(recorder, RetryPolicy(retries=2, base=0.0, cap=0.0))("create")
    keys = recorder.keys()
    assert len(keys) == 3 and keys[0] is not None and len(set(keys)) == 1


@CLIENTS
def test_retries_0_sends_once(client: Any) -> None:
    recorder = Recorder(503)
    with pytest.raises(ServerError):
        client(recorder, RetryPolicy(retries=0))("create")
    assert len(recorder.sent) == 1


@CLIENTS
def test_the_statuses_retried_are_the_policys(client: Any) -> None:
    policy = RetryPolicy(retries=1, statuses=frozenset({500}), base=0.0, cap=0.0)
    recorder = Recorder(500)
    with pytest.raises(ServerError):
        client(recorder, policy)("create")
    assert len(recorder.sent) == 2  # 500 is retried under this policy (not by default)
    recorder = Recorder(503)
    with pytest.raises(ServerError):
        client(recorder, policy)("create")
    assert len(recorder.sent) == 1  # 503 is not in its statuses


@CLIENTS
def test_a_request_without_a_key_is_never_retried(client: Any) -> None:
    recorder = Recorder(503)
    with pytest.raises(ApiError):
        client(recorder, RetryPolicy(retries=3, base=0.0, cap=0.0))("get")
    assert len(recorder.sent) == 1 and recorder.keys() == [None]


def test_the_default_policy_is_unchanged_on_both_clients() -> None:
    default = RetryPolicy(retries=4, base=0.25, cap=5.0, statuses=frozenset({502, 503, 504}))
    assert Streams(base_url=BASE, api_key="k").config.retry == default
    assert AsyncStreams(base_url=BASE, api_key="k").config.retry == default
    custom = RetryPolicy(retries=1)
    assert Streams(base_url=BASE, api_key="k", retry=custom).config.retry is custom


@pytest.mark.parametrize(
    "bad",
    [
        {"retries": -1},
        {"retries": 1.5},
        {"retries": True},
        {"base": -0.1},
        {"cap": math.inf},
        {"base": math.nan},
        {"statuses": frozenset({200})},
        {"statuses": frozenset({"503"})},
        {"statuses": 503},
    ],
)
def test_a_bad_policy_is_a_configuration_error(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**bad)


def test_retry_must_be_a_policy() -> None:
    with pytest.raises(ConfigurationError):
        Streams(base_url=BASE, api_key="k", retry=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        AsyncStreams(base_url=BASE, api_key="k", retry={"retries": 3})  # type: ignore[arg-type]


def test_statuses_may_be_any_iterable_and_are_kept_as_a_frozenset() -> None:
    assert RetryPolicy(statuses=[503, 429]).statuses == frozenset({503, 429})  # type: ignore[arg-type]
