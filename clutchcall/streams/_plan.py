"""One implementation of every control-plane call for both clients (sans-I/O plans).

An operation (``streams.live_inputs.get``, ``streams.assets.upload_file``...) is written
once, in ``_ops`` / ``_asset_ops``, as a generator: a *plan* that yields what it needs
done (:class:`Call` a control-plane endpoint, :class:`Send` a request to an upload URL,
:class:`Sleep`) and receives the answer, or has the failure raised at the ``yield``.
:class:`~clutchcall.streams.Streams` runs plans with ``httpx.Client`` and ``time.sleep``
(:func:`run`), :class:`~clutchcall.streams.AsyncStreams` with ``httpx.AsyncClient`` and
``asyncio.sleep`` (:func:`arun`): the two clients differ only in how they wait.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import IO, Any, Final, Protocol

from clutchcall.streams._errors import ApiError, ConnectionFailed
from clutchcall.streams._http import (
    DEFAULT_RETRY,
    IDEMPOTENCY_HEADER,
    RetryPolicy,
    idempotency_key,
)

__all__ = [
    "CREATE_RETRY",
    "Call",
    "Effect",
    "FileRange",
    "Plan",
    "Retries",
    "Send",
    "Sleep",
    "apaginate",
    "arun",
    "idempotent",
    "paginate",
    "run",
]

#: The retries of every create (a POST that makes or changes something) by default.
CREATE_RETRY: Final = DEFAULT_RETRY


@dataclass(frozen=True, slots=True)
class Call:
    """A control-plane request; the answer is its JSON (``ApiError`` / ``ConnectionFailed``
    raised at the ``yield`` otherwise)."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None  # besides the client's (auth, org, user agent)


@dataclass(frozen=True, slots=True)
class FileRange:
    """Bytes ``start..end`` of an open file as a request body; ``sent(pos)`` after each piece."""

    file: IO[bytes]
    start: int
    end: int
    sent: Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Send:
    """A request to an absolute URL (an upload URL: no API key); the answer is the
    ``httpx.Response`` as it came (``httpx.TransportError`` raised at the ``yield``)."""

    method: str
    url: str
    headers: dict[str, str]
    body: FileRange | None = None


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Retries:
    """The client's :class:`RetryPolicy` (``Streams(retry=...)``) is the answer."""


Effect = Call | Send | Sleep | Retries
type Plan[T] = Generator[Effect, Any, T]


def idempotent(
    method: str,
    path: str,
    json: Any = None,
    *,
    key: str | None = None,
    policy: RetryPolicy | None = None,
) -> Plan[Any]:
    """A create: sent with an ``Idempotency-Key`` (``key``, else a new UUID v4) and, after a
    cut connection, a timeout, 502/503/504 or "still in progress" (409), sent again with
    the same key, so the control plane answers the retry with the first request's
    answer instead of doing it twice (control/idempotency.py). ``policy``: how (else the
    client's, ``Streams(retry=...)``)."""
    sent_key = idempotency_key(key)
    if policy is None:
        policy = yield Retries()
    assert isinstance(policy, RetryPolicy)
    failures = 0
    while True:
        try:
            return (yield Call(method, path, json=json, headers={IDEMPOTENCY_HEADER: sent_key}))
        except (ConnectionFailed, ApiError) as exc:
            if failures >= policy.retries or not policy.worthy(exc):
                raise
            failures += 1
            yield Sleep(policy.delay(failures, exc))


class _Steps[T]:
    """Iterates a plan's effects; the runner sets ``result`` or ``error`` after each."""

    def __init__(self, plan: Plan[T]) -> None:
        self._plan = plan
        self.result: Any = None
        self.error: Exception | None = None
        self.value: T

    def __iter__(self) -> Iterator[Effect]:
        return self

    def __next__(self) -> Effect:
        result, error = self.result, self.error
        self.result, self.error = None, None
        try:
            return self._plan.throw(error) if error is not None else self._plan.send(result)
        except StopIteration as done:
            self.value = done.value
            raise StopIteration from None


def run[T](plan: Plan[T], perform: Callable[[Effect], Any]) -> T:
    """Run ``plan`` to its value, doing each effect with the blocking ``perform``."""
    steps = _Steps(plan)
    for effect in steps:
        try:
            steps.result = perform(effect)
        except Exception as exc:  # handed to the plan, which re-raises what it does not handle
            steps.error = exc
    return steps.value


async def arun[T](plan: Plan[T], perform: Callable[[Effect], Awaitable[Any]]) -> T:
    """:func:`run` with an awaitable ``perform``."""
    steps = _Steps(plan)
    for effect in steps:
        try:
            steps.result = await perform(effect)
        except Exception as exc:
            steps.error = exc
    return steps.value


class _Page[ItemT](Protocol):
    @property
    def next_cursor(self) -> str | None: ...

    def __iter__(self) -> Iterator[ItemT]: ...


def paginate[ItemT](list_page: Callable[..., _Page[ItemT]], page_size: int) -> Iterator[ItemT]:
    """Every item of a cursor-paged listing (``list_page(limit=, cursor=)``)."""
    cursor: str | None = None
    while True:
        page = list_page(limit=page_size, cursor=cursor)
        yield from page
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


async def apaginate[ItemT](
    list_page: Callable[..., Awaitable[_Page[ItemT]]], page_size: int
) -> AsyncIterator[ItemT]:
    """:func:`paginate` over an async ``list_page``."""
    cursor: str | None = None
    while True:
        page = await list_page(limit=page_size, cursor=cursor)
        for item in page:
            yield item
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
