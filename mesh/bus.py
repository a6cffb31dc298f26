"""The cluster bus: Redis pub/sub, small keyed records with TTLs, and TTL indexes.

Redis is the cluster's shared memory, never the data path (no media bytes go
through here). :class:`RedisBus` is the production implementation;
:class:`MemoryBus` has the same interface inside one process, for the embedded
``clutchcall up`` mode and unit tests.

Values are msgpack-encoded dicts. A subscription survives the bus going away:
while Redis is down it waits and retries, and after reconnecting it yields a
``BusMessage`` with ``resync=True`` so the consumer re-reads any state it keeps
from keyed records (messages published while it was away are lost, as with
any Redis pub/sub).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgpack
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

__all__ = [
    "Bus",
    "BusMessage",
    "BusUnavailable",
    "MemoryBus",
    "RedisBus",
    "connect_bus",
]

Record = dict[str, Any]


class BusUnavailable(Exception):
    """The bus (Redis) cannot be reached right now."""


@dataclass(frozen=True, slots=True)
class BusMessage:
    channel: str
    data: Record = field(default_factory=dict)
    resync: bool = False


class Bus(Protocol):
    """What nodes and the control plane need from the cluster bus."""

    async def publish(self, channel: str, data: Record) -> None: ...

    async def set(self, key: str, value: Record, ttl: float | None = None) -> None: ...

    async def get(self, key: str) -> Record | None: ...

    async def delete(self, key: str) -> None: ...

    async def keys(self, pattern: str) -> list[str]:
        """Keys matching a glob pattern (``clutchcall:node:*``)."""
        ...

    async def get_many(self, keys: list[str]) -> list[Record | None]:
        """Several records in one round trip, in the order asked (None where missing)."""
        ...

    # An index is a set of members, each with its own TTL, timed by the server's clock
    # (a Redis sorted set scored by expiry): the topology's registry of live nodes and
    # routes, read without scanning the keyspace (docs/bus-contract.md).

    async def index_touch(self, index: str, member: str, ttl: float) -> bool:
        """Keep ``member`` in ``index`` for ``ttl`` more seconds; True when it was not there."""
        ...

    async def index_expire(self, index: str) -> list[str]:
        """Remove and return the members whose TTL ran out; each goes to one caller only."""
        ...

    async def index_members(self, index: str) -> list[str]:
        """The members whose TTL has not run out."""
        ...

    async def index_remove(self, index: str, member: str) -> None: ...

    def subscribe(
        self, *channels: str
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[BusMessage]]:
        """``async with bus.subscribe("a", "b") as messages: async for m in messages: ...``"""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


def _pack(data: Record) -> bytes:
    return msgpack.packb(data, use_bin_type=True)


def _unpack(raw: bytes) -> Record:
    value = msgpack.unpackb(raw, raw=False)
    if not isinstance(value, dict):
        raise ValueError("bus record is not a map")
    return value


class MemoryBus:
    """In-process bus with the same semantics (TTLs, glob keys, fan-out pub/sub)."""

    def __init__(self, queue_size: int = 1024) -> None:
        self._records: dict[str, tuple[bytes, float | None]] = {}
        self._indexes: dict[str, dict[str, float]] = {}  # index -> member -> expires
        self._subscribers: dict[str, set[asyncio.Queue[BusMessage]]] = {}
        self._queue_size = queue_size

    def _alive(self, key: str) -> bytes | None:
        entry = self._records.get(key)
        if entry is None:
            return None
        raw, expires = entry
        if expires is not None and expires <= time.monotonic():
            del self._records[key]
            return None
        return raw

    async def publish(self, channel: str, data: Record) -> None:
        message = BusMessage(channel, _unpack(_pack(data)))
        for queue in self._subscribers.get(channel, ()):
            if queue.full():
                # A stuck consumer loses its oldest message, never blocks publishers.
                queue.get_nowait()
            queue.put_nowait(message)

    async def set(self, key: str, value: Record, ttl: float | None = None) -> None:
        expires = time.monotonic() + ttl if ttl is not None else None
        self._records[key] = (_pack(value), expires)

    async def get(self, key: str) -> Record | None:
        raw = self._alive(key)
        return None if raw is None else _unpack(raw)

    async def get_many(self, keys: list[str]) -> list[Record | None]:
        return [await self.get(k) for k in keys]

    async def delete(self, key: str) -> None:
        self._records.pop(key, None)

    async def keys(self, pattern: str) -> list[str]:
        return [
            k
            for k in list(self._records)
            if fnmatch.fnmatchcase(k, pattern) and self._alive(k) is not None
        ]

    async def index_touch(self, index: str, member: str, ttl: float) -> bool:
        members = self._indexes.setdefault(index, {})
        new = member not in members
        members[member] = time.monotonic() + ttl
        return new

    async def index_expire(self, index: str) -> list[str]:
        members = self._indexes.get(index, {})
        now = time.monotonic()
        gone = [m for m, expires in members.items() if expires <= now]
        for member in gone:
            del members[member]
        return gone

    async def index_members(self, index: str) -> list[str]:
        now = time.monotonic()
        return [m for m, expires in self._indexes.get(index, {}).items() if expires > now]

    async def index_remove(self, index: str, member: str) -> None:
        self._indexes.get(index, {}).pop(member, None)

    @contextlib.asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[AsyncIterator[BusMessage]]:
        queue: asyncio.Queue[BusMessage] = asyncio.Queue(self._queue_size)
        for channel in channels:
            self._subscribers.setdefault(channel, set()).add(queue)

        async def messages() -> AsyncIterator[BusMessage]:
            while True:
                yield await queue.get()

        try:
            yield messages()
        finally:
            for channel in channels:
                self._subscribers.get(channel, set()).discard(queue)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._subscribers.clear()


# Index scripts: scores are expiry times in ms of the server's clock (TIME), so nodes
# with skewed clocks agree on what expired. Redis >= 5 (scripts replicate effects).
_NOW_MS = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "
_INDEX_TOUCH = _NOW_MS + "return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])"
_INDEX_EXPIRE = (
    _NOW_MS + "local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1000) "
    "if #gone > 0 then redis.call('ZREM', KEYS[1], unpack(gone)) end return gone"
)
_INDEX_MEMBERS = _NOW_MS + "return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisBus:
    """The production bus over a Redis server."""

    def __init__(self, url: str, *, retry_interval: float = 0.5, timeout: float = 2.0) -> None:
        self.url = url
        self._retry_interval = retry_interval
        # One immediate retry: after a Redis restart the first command on every
        # pooled connection fails with a reset; the retry reconnects.
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=5,
            retry=Retry(NoBackoff(), 1),
            retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
        )
        # register_script: EVALSHA, loading the script again after a Redis restart.
        self._touch = self._redis.register_script(_INDEX_TOUCH)
        self._expire = self._redis.register_script(_INDEX_EXPIRE)
        self._members = self._redis.register_script(_INDEX_MEMBERS)

    @property
    def client(self) -> aioredis.Redis:
        """The Redis client, for atomic scripts a record API cannot express (rate limits)."""
        return self._redis

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            raise BusUnavailable(f"redis unavailable at {self.url}: {exc}") from exc

    async def publish(self, channel: str, data: Record) -> None:
        await self._call(self._redis.publish(channel, _pack(data)))

    async def set(self, key: str, value: Record, ttl: float | None = None) -> None:
        px = max(1, int(ttl * 1000)) if ttl is not None else None
        await self._call(self._redis.set(key, _pack(value), px=px))

    async def get(self, key: str) -> Record | None:
        raw = await self._call(self._redis.get(key))
        return None if raw is None else _unpack(raw)

    async def delete(self, key: str) -> None:
        await self._call(self._redis.delete(key))

    async def get_many(self, keys: list[str]) -> list[Record | None]:
        if not keys:
            return []
        raws = await self._call(self._redis.mget(keys))
        return [None if raw is None else _unpack(raw) for raw in raws]

    async def keys(self, pattern: str) -> list[str]:
        found: list[str] = []
        try:
            async for key in self._redis.scan_iter(match=pattern, count=500):
                found.append(key.decode() if isinstance(key, bytes) else key)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            raise BusUnavailable(f"redis unavailable at {self.url}: {exc}") from exc
        return found

    async def index_touch(self, index: str, member: str, ttl: float) -> bool:
        added = await self._call(self._touch(keys=[index], args=[member, max(1, int(ttl * 1000))]))
        return bool(added)

    async def index_expire(self, index: str) -> list[str]:
        return [_text(m) for m in await self._call(self._expire(keys=[index]))]

    async def index_members(self, index: str) -> list[str]:
        return [_text(m) for m in await self._call(self._members(keys=[index]))]

    async def index_remove(self, index: str, member: str) -> None:
        await self._call(self._redis.zrem(index, member))

    @contextlib.asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[AsyncIterator[BusMessage]]:
        pubsubs: list[Any] = []

        async def messages() -> AsyncIterator[BusMessage]:
            # After any failure (even before the first successful SUBSCRIBE) the
            # consumer may have missed messages: tell it to re-read its state.
            missed = False
            while True:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                pubsubs.append(pubsub)
                try:
                    await pubsub.subscribe(*channels)
                    if missed:
                        missed = False
                        yield BusMessage("", resync=True)
                    while True:
                        msg = await pubsub.get_message(timeout=1.0)
                        if msg is None or msg.get("type") != "message":
                            continue
                        channel = msg["channel"]
                        channel = channel.decode() if isinstance(channel, bytes) else channel
                        try:
                            data = _unpack(msg["data"])
                        except (ValueError, msgpack.UnpackException):
                            continue  # not ours; never let a stray publish kill a node
                        yield BusMessage(channel, data)
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                    missed = True
                    await asyncio.sleep(self._retry_interval)
                finally:
                    pubsubs.remove(pubsub)
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()

        try:
            yield messages()
        finally:
            for pubsub in list(pubsubs):
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
            return False

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._redis.aclose()


def connect_bus(url: str | None) -> Bus:
    """``redis://...`` gives a :class:`RedisBus`; ``None`` or ``memory://`` an in-process bus."""
    if url is None or url.startswith("memory:"):
        return MemoryBus()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBus(url)
    raise ValueError(f"unsupported bus URL {url!r} (expected redis://... or memory://)")
