"""Locks that serialize the changes of one family of records kept in both stores.

Every record the control plane writes to the database *and* to Redis (stream keys,
revocations, signing keys and the JWKS) changes under the lock of its family, so
two changes cannot interleave their writes and leave the stores disagreeing.

A lock is an :class:`asyncio.Lock` for this process, plus, when the bus is Redis, a
Redis lock with expiry (``SET clutchcall:lock:<family> <token> NX PX``) so every
process that shares the database and Redis (control-plane replicas, ``clutchcall
admin rotate-signing-key``) takes turns too. While held, the Redis lock's expiry is
renewed every third of its TTL, so a slow holder does not lose it; a holder that dies
frees it when the TTL runs out. Acquiring it while Redis is down raises
:class:`~mesh.bus.BusUnavailable` before anything is changed (the caller answers 503);
waiting longer than ``wait`` raises :class:`~control.errors.Problem` 503 ``busy``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from collections.abc import AsyncIterator
from typing import Final

import redis.exceptions
import structlog

from control.errors import Problem
from mesh.bus import Bus, BusUnavailable, RedisBus

__all__ = ["LOCK_PREFIX", "RELEASE_IF_OWNER", "RENEW_IF_OWNER", "RecordLocks"]

LOCK_PREFIX: Final = "clutchcall:lock:"
_log = structlog.get_logger(__name__)
_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

# KEYS[1] lock; ARGV token, ttl ms. Renew or release only a lock this holder still owns
# (also the idempotency claims of control/idempotency.py).
RENEW_IF_OWNER: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE_IF_OWNER: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RecordLocks:
    """One lock per record family (``streamkeys``, ``revocations``, ``signing-keys``)."""

    def __init__(self, bus: Bus, *, ttl: float = 15.0, wait: float = 20.0) -> None:
        self._redis = bus.client if isinstance(bus, RedisBus) else None
        self._ttl_ms = max(1000, int(ttl * 1000))
        self._wait = wait
        self._local: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, *families: str) -> AsyncIterator[None]:
        """Hold the locks of ``families``, taken in a fixed (sorted) order, so two
        callers asking for overlapping sets cannot deadlock."""
        async with contextlib.AsyncExitStack() as stack:
            for family in sorted(set(families)):
                await stack.enter_async_context(self._hold(family))
            yield

    @contextlib.asynccontextmanager
    async def _hold(self, family: str) -> AsyncIterator[None]:
        local = self._local.setdefault(family, asyncio.Lock())
        async with local:
            if self._redis is None:
                yield
                return
            key, token = f"{LOCK_PREFIX}{family}", secrets.token_hex(16)
            await self._acquire(key, token)
            renew = asyncio.create_task(self._renew(key, token))
            try:
                yield
            finally:
                renew.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renew
                try:
                    await self._redis.eval(RELEASE_IF_OWNER, 1, key, token)  # type: ignore[misc]
                except _REDIS_DOWN as exc:  # its TTL frees it
                    _log.warning("record_lock_release_failed", lock=key, error=str(exc))

    async def _acquire(self, key: str, token: str) -> None:
        assert self._redis is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        pause = 0.005
        while True:
            try:
                if await self._redis.set(key, token, nx=True, px=self._ttl_ms):
                    return
            except _REDIS_DOWN as exc:
                raise BusUnavailable(f"redis unavailable for lock {key}: {exc}") from exc
            if loop.time() >= deadline:
                raise Problem(
                    503,
                    "busy",
                    "another change of the same records is still in progress; retry shortly",
                    headers={"Retry-After": "1"},
                )
            await asyncio.sleep(pause * (1 + random.random()))
            pause = min(pause * 2, 0.1)

    async def _renew(self, key: str, token: str) -> None:
        assert self._redis is not None
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            try:
                await self._redis.eval(RENEW_IF_OWNER, 1, key, token, str(self._ttl_ms))  # type: ignore[misc]
            except _REDIS_DOWN as exc:
                _log.warning("record_lock_renew_failed", lock=key, error=str(exc))
