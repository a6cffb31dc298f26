"""One writer at a time per upload: a lock that expires, and a "give up" request.

:class:`RedisLocks` holds the lock in Redis (``SET NX PX`` with a token, compared on
refresh and release), so control-plane nodes sharing a data directory never append
to the same file at once; :class:`MemoryLocks` does the same inside one process.

A request that wants the lock while another holds it raises the holder's "give up"
flag and waits; a holder that has received no bytes for a while (a dangling PATCH
whose client is gone without closing) sees the flag and lets go, as tusd does.
A holder that died (a killed node) loses the lock once its expiry passes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Protocol

import redis.asyncio as aioredis

__all__ = ["LOCK_TTL", "Lock", "MemoryLocks", "RedisLocks", "UploadLocks", "open_locks"]

# How long a lock outlives its last refresh (a dead holder's lock frees after this).
LOCK_TTL = 5.0
_POLL = 0.05


class Lock(Protocol):
    async def refresh(self) -> bool:
        """Extend the lock; False when it is no longer ours (expired and taken)."""
        ...

    async def give_up_requested(self) -> bool:
        """True when another request is waiting for this lock."""
        ...

    async def release(self) -> None: ...


class UploadLocks(Protocol):
    async def acquire(self, key: str, *, wait: float) -> Lock | None:
        """The lock on ``key``, waiting up to ``wait`` seconds (asking the holder to
        give up meanwhile); None when it stayed held."""
        ...

    async def close(self) -> None: ...


class _MemoryLock:
    def __init__(self, owner: MemoryLocks, key: str, token: str) -> None:
        self._owner = owner
        self._key = key
        self._token = token

    async def refresh(self) -> bool:
        held = self._owner._held.get(self._key)
        if held is None or held[0] != self._token:
            return False
        self._owner._held[self._key] = (self._token, time.monotonic() + LOCK_TTL)
        return True

    async def give_up_requested(self) -> bool:
        until = self._owner._give_up.get(self._key)
        return until is not None and until > time.monotonic()

    async def release(self) -> None:
        held = self._owner._held.get(self._key)
        if held is not None and held[0] == self._token:
            del self._owner._held[self._key]
            self._owner._give_up.pop(self._key, None)


class MemoryLocks:
    """Locks inside one process (the control plane without Redis)."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}
        self._give_up: dict[str, float] = {}

    async def acquire(self, key: str, *, wait: float) -> Lock | None:
        deadline = time.monotonic() + wait
        while True:
            now = time.monotonic()
            held = self._held.get(key)
            if held is None or held[1] <= now:
                token = secrets.token_hex(16)
                self._held[key] = (token, now + LOCK_TTL)
                self._give_up.pop(key, None)
                return _MemoryLock(self, key, token)
            if now >= deadline:
                return None
            self._give_up[key] = now + 1.0
            await asyncio.sleep(_POLL)

    async def close(self) -> None:
        return None


_REFRESH = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[2])
  return redis.call('del', KEYS[1])
end
return 0
"""


class _RedisLock:
    def __init__(self, owner: RedisLocks, key: str, token: str) -> None:
        self._owner = owner
        self._key = key
        self._token = token

    async def refresh(self) -> bool:
        done = await self._owner._redis.eval(  # type: ignore[misc]
            _REFRESH, 1, self._owner._lock_key(self._key), self._token, int(LOCK_TTL * 1000)
        )
        return bool(done)

    async def give_up_requested(self) -> bool:
        return bool(await self._owner._redis.exists(self._owner._give_up_key(self._key)))

    async def release(self) -> None:
        await self._owner._redis.eval(  # type: ignore[misc]
            _RELEASE,
            2,
            self._owner._lock_key(self._key),
            self._owner._give_up_key(self._key),
            self._token,
        )


class RedisLocks:
    """Locks shared by every control-plane node on one Redis."""

    def __init__(self, url: str, *, prefix: str = "clutchcall:upload-lock:") -> None:
        self._redis = aioredis.Redis.from_url(url)
        self._prefix = prefix

    def _lock_key(self, key: str) -> str:
        return f"{self._prefix}{key}"

    def _give_up_key(self, key: str) -> str:
        return f"{self._prefix}{key}:give-up"

    async def acquire(self, key: str, *, wait: float) -> Lock | None:
        deadline = time.monotonic() + wait
        token = secrets.token_hex(16)
        while True:
            got = await self._redis.set(
                self._lock_key(key), token, nx=True, px=int(LOCK_TTL * 1000)
            )
            if got:
                await self._redis.delete(self._give_up_key(key))
                return _RedisLock(self, key, token)
            if time.monotonic() >= deadline:
                return None
            await self._redis.set(self._give_up_key(key), b"1", px=1000)
            await asyncio.sleep(_POLL)

    async def close(self) -> None:
        await self._redis.aclose()


def open_locks(redis_url: str | None) -> UploadLocks:
    """Redis locks when the control plane has Redis, in-memory ones otherwise."""
    return RedisLocks(redis_url) if redis_url else MemoryLocks()
