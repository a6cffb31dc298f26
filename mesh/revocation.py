"""The revocation set every POP keeps, fed by ``clutchcall:revocations`` and persisted records.

Semantics (``docs/bus-contract.md``; the records are :mod:`mesh.bus_contract`'s): a token is revoked when its ``jti`` is revoked,
or when its ``sub`` is revoked with ``iat <= before`` (tokens minted after a
"revoke everything for this input" keep working).  Each revocation carries
``exp``, the time after which it can be forgotten.

:meth:`RevocationSet.run` subscribes first and then loads every persisted
record, so nothing published in between is lost; it reloads after every
``resync`` from the bus.  Listeners are called for every revocation that is
new to this set (from a message or found by a reload), so the POP can close the
matching sessions at once.  The control plane publishes with :func:`publish_revocation`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import msgpack
import redis.exceptions
import structlog

from mesh.bus import Bus, BusUnavailable
from mesh.bus_contract import REVOCATIONS_CHANNEL, REVOKED_PREFIX, MalformedLog, Revocation

__all__ = [
    "MAX_PLAYBACK_TTL",
    "REVOCATIONS_CHANNEL",
    "REVOKED_PREFIX",
    "Revocation",
    "RevocationSet",
    "RevocationStatistics",
    "publish_revocation",
]

MAX_PLAYBACK_TTL: Final = 24 * 3600.0

_BUS_DOWN = (BusUnavailable, redis.exceptions.RedisError, OSError)
_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RevocationStatistics:
    jti: int
    sub: int
    applied: int
    reloads: int
    malformed: int


Listener = Callable[[Revocation], None]


class RevocationSet:
    """Revoked ``jti``s and ``sub``s, kept current from the bus (see the module docstring)."""

    def __init__(self, *, clock: Callable[[], float] = time.time, settle: float = 1.0) -> None:
        self._clock = clock
        self._settle = settle
        self._jti: dict[str, Revocation] = {}
        self._sub: dict[str, Revocation] = {}
        self._listeners: list[Listener] = []
        self._loaded = asyncio.Event()
        self._applied = 0
        self._reloads = 0
        self._malformed = 0
        self._malformed_log = MalformedLog()

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(revocation)`` for each newly applied revocation; returns a remover."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def is_revoked(self, *, jti: str, sub: str, iat: float) -> bool:
        now = self._clock()
        by_jti = self._jti.get(jti)
        if by_jti is not None and by_jti.exp > now:
            return True
        by_sub = self._sub.get(sub)
        return by_sub is not None and by_sub.exp > now and by_sub.matches(jti=jti, sub=sub, iat=iat)

    def apply(self, revocation: Revocation) -> bool:
        """Add a revocation; returns False (and calls nobody) if it adds nothing new."""
        if revocation.exp <= self._clock():
            return False
        table = self._jti if revocation.kind == "jti" else self._sub
        old = table.get(revocation.value)
        if old is not None and old.exp >= revocation.exp and old.before >= revocation.before:
            return False
        if old is not None:
            # A later sub revocation moves "before" forward; keep the widest of both.
            revocation = Revocation(
                revocation.kind,
                revocation.value,
                max(old.exp, revocation.exp),
                max(old.before, revocation.before),
                revocation.at,
            )
        table[revocation.value] = revocation
        self._applied += 1
        for listener in list(self._listeners):
            try:
                listener(revocation)
            except Exception:  # one broken listener must not hide revocations from others
                _log.exception("revocation_listener_failed", kind=revocation.kind)
        return True

    def prune(self) -> int:
        """Forget expired revocations; returns how many were dropped."""
        now = self._clock()
        dropped = 0
        for table in (self._jti, self._sub):
            for value in [v for v, r in table.items() if r.exp <= now]:
                del table[value]
                dropped += 1
        return dropped

    async def load(self, bus: Bus) -> int:
        """Apply every persisted ``clutchcall:revoked:*`` record; returns how many were new."""
        added = 0
        for key in await bus.keys(REVOKED_PREFIX + "*"):
            try:
                record = await bus.get(key)
                if record is None:
                    continue
                revocation = Revocation.from_record(key, record)
            except (ValueError, TypeError, msgpack.UnpackException) as exc:
                self._malformed += 1
                self._malformed_log.report("bad_revocation_record", key, exc)
                continue
            added += self.apply(revocation)
        self._reloads += 1
        self.prune()
        return added

    async def wait_loaded(self) -> None:
        """Until the persisted records were read once (or found unreachable)."""
        await self._loaded.wait()

    async def run(self, bus: Bus, *, prune_interval: float = 60.0) -> None:
        """Follow the channel until cancelled."""
        async with bus.subscribe(REVOCATIONS_CHANNEL) as messages, asyncio.TaskGroup() as tg:
            tg.create_task(self._initial_load(bus))
            tg.create_task(self._prune_loop(prune_interval))
            async for message in messages:
                if message.resync:
                    await self._reload(bus)
                    continue
                try:
                    revocation = Revocation.from_message(message.data)
                except ValueError as exc:
                    self._malformed += 1
                    self._malformed_log.report(
                        "bad_revocation_message", repr(message.data)[:120], exc
                    )
                    continue
                self.apply(revocation)

    async def _initial_load(self, bus: Bus) -> None:
        await self._reload(bus)
        self._loaded.set()
        # The bus subscribes when iteration starts, concurrently with the load above:
        # a revocation published after that scan but before SUBSCRIBE took effect
        # would be missed, so read the records once more when the subscription
        # has certainly settled.
        await asyncio.sleep(self._settle)
        await self._reload(bus)

    async def _reload(self, bus: Bus) -> None:
        try:
            added = await self.load(bus)
        except _BUS_DOWN as exc:
            _log.warning("revocations_unavailable", error=str(exc))
            return
        if added:
            _log.info("revocations_loaded", added=added, jti=len(self._jti), sub=len(self._sub))

    async def _prune_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.prune()

    def statistics(self) -> RevocationStatistics:
        return RevocationStatistics(
            jti=len(self._jti),
            sub=len(self._sub),
            applied=self._applied,
            reloads=self._reloads,
            malformed=self._malformed,
        )


async def publish_revocation(bus: Bus, revocation: Revocation) -> None:
    """Persist (TTL until ``exp``) and broadcast a revocation (control-plane side)."""
    ttl = revocation.exp - time.time()
    if ttl <= 0:
        return
    if not revocation.at:
        revocation = Revocation(
            revocation.kind, revocation.value, revocation.exp, revocation.before, time.time()
        )
    await bus.set(revocation.key, revocation.to_record(), ttl=ttl)
    await bus.publish(REVOCATIONS_CHANNEL, revocation.to_message())
