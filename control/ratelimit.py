"""Throttling of repeated authentication failures, per client address and presented key.

A client that fails authentication ``limit`` times within ``window`` seconds with
keys starting alike (the bucket is the address plus a hash of the key's first
:data:`PREFIX_LENGTH` characters) is refused (429 with Retry-After) until the
window has passed. Another key from the same address is a different bucket, so a
misbehaving client does not lock out the valid keys behind the same NAT or proxy;
API keys are 192-bit random, so guessing is not what this defends against -
floods of one wrong or revoked key are.

The count is atomic: :meth:`FailureLimiter.begin` reserves a failure *before* the
key is checked (released by :meth:`FailureLimiter.succeeded`), and the checks of one
bucket run one at a time (:meth:`FailureLimiter.checking`), so 100 parallel requests
check at most ``limit`` bad keys. Buckets that authenticated recently skip both, so a
working client's parallel requests are neither serialized nor throttled. The
count lives in Redis when the control plane has one (shared by every replica), else
in this process (memory bounded: at most ``max_clients`` buckets, the least recently
failing forgotten first); a Redis outage falls back to memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from time import monotonic
from typing import Any, Final

import redis.exceptions
import structlog

__all__ = ["PREFIX_LENGTH", "FailureLimiter", "bucket_of"]

PREFIX_LENGTH: Final = 12
_KEY_PREFIX: Final = "clutchcall:authfail:"
_log = structlog.get_logger(__name__)

# KEYS[1] bucket; ARGV limit, window ms. Returns -1 (go ahead, counted) or the ms to wait.
_BEGIN: Final = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); ttl = tonumber(ARGV[2]) end
  return ttl
end
return -1
"""
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) and tonumber(redis.call('GET', KEYS[1])) > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
"""
_REDIS_DOWN = (redis.exceptions.RedisError, OSError)


def bucket_of(address: str, presented: str | None) -> str:
    """The bucket of a request: its address and a hash of its key's first characters."""
    prefix = (presented or "")[:PREFIX_LENGTH]
    return f"{address}|{hashlib.sha256(prefix.encode('utf-8', 'replace')).hexdigest()[:16]}"


class FailureLimiter:
    def __init__(
        self,
        limit: int,
        window: float,
        *,
        redis_client: Any = None,
        max_clients: int = 100_000,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit and window must be positive")
        self.limit = limit
        self.window = window
        self._redis = redis_client
        self._max_clients = max_clients
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._good: OrderedDict[str, float] = OrderedDict()  # bucket -> authenticated at
        self._checking: dict[str, tuple[asyncio.Lock, list[int]]] = {}  # lock, users

    # --- in memory (also the fallback while Redis is away) -------------------------------

    def _prune(self, client: str, now: float) -> deque[float] | None:
        times = self._failures.get(client)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None when it is not throttled."""
        now = self._clock()
        times = self._prune(client, now)
        if times is None or len(times) < self.limit:
            return None
        return max(1, math.ceil(times[0] + self.window - now))

    def failed(self, client: str) -> None:
        now = self._clock()
        times = self._prune(client, now)
        if times is None:
            times = self._failures[client] = deque(maxlen=self.limit)
            while len(self._failures) > self._max_clients:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(client)
        times.append(now)

    def _begin_memory(self, bucket: str) -> int | None:
        wait = self.retry_after(bucket)
        if wait is None:
            self.failed(bucket)  # reserved; no await between the check and the count
        return wait

    def _release_memory(self, bucket: str) -> None:
        times = self._failures.get(bucket)
        if times:
            times.pop()
            if not times:
                del self._failures[bucket]

    # --- the request path --------------------------------------------------------------------

    def _recently_good(self, bucket: str) -> bool:
        at = self._good.get(bucket)
        return at is not None and self._clock() - at < self.window

    @contextlib.asynccontextmanager
    async def checking(self, bucket: str) -> AsyncIterator[None]:
        """Hold while checking a key of ``bucket``: one check at a time per bucket (in
        this process), unless the bucket authenticated recently."""
        if self._recently_good(bucket):
            yield
            return
        lock, users = self._checking.setdefault(bucket, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._checking[bucket]

    async def begin(self, bucket: str) -> int | None:
        """Count a failure of ``bucket`` before its key is checked; the seconds to wait
        instead when it is throttled. Buckets that authenticated recently pass uncounted."""
        if self._recently_good(bucket):
            return None
        if self._redis is not None:
            try:
                ms = await self._redis.eval(
                    _BEGIN, 1, _KEY_PREFIX + bucket, self.limit, int(self.window * 1000)
                )
            except _REDIS_DOWN as exc:
                _log.warning("auth_limiter_redis_unavailable", error=str(exc))
            else:
                return None if int(ms) < 0 else max(1, math.ceil(int(ms) / 1000))
        return self._begin_memory(bucket)

    async def succeeded(self, bucket: str) -> None:
        """The key was valid: take back what :meth:`begin` counted."""
        counted = not self._recently_good(bucket)
        self._good[bucket] = self._clock()
        self._good.move_to_end(bucket)
        while len(self._good) > self._max_clients:
            self._good.popitem(last=False)
        if not counted:
            return
        if self._redis is not None:
            try:
                await self._redis.eval(_RELEASE, 1, _KEY_PREFIX + bucket)
                return
            except _REDIS_DOWN as exc:
                _log.warning("auth_limiter_redis_unavailable", error=str(exc))
        self._release_memory(bucket)

    async def rejected(self, bucket: str) -> None:
        """The key was refused: a bucket that skipped :meth:`begin` is counted now."""
        if self._good.pop(bucket, None) is not None:
            await self.begin(bucket)

    def statistics(self) -> dict[str, int]:
        return {"tracked_clients": len(self._failures)}
