"""Playback signing keys and the JWKS, mixed into :class:`control.service.ControlService`.

The keys live in the database (private halves sealed); their public halves are the
Redis record ``clutchcall:jwks`` that POPs verify tokens with, and every change is
announced on ``clutchcall:signing-keys`` so POPs refresh at once.

A key change (creation of the first key, rotation by age or on request, retirement
of the previous key) holds the ``signing-keys`` lock of :mod:`control.locks`, so
rotations serialize across every process sharing the stores (``clutchcall admin
rotate-signing-key`` included), and happens in both stores or in neither:

1. the JWKS with the new public key added is written to Redis first (a key nobody
   signs with yet is harmless there); if Redis refuses, nothing changed (503),
2. the database rotates (new key active, the previous one retired); if that fails,
   the previous JWKS is put back,
3. then the rotation is announced; a lost announcement is logged (POPs re-read the
   JWKS when their subscription comes back, and on an unknown kid).

Minting takes the lock only when the JWKS this process published differs from the
database's keys (another process rotated, or keys were purged), never otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import structlog

from control.locks import RecordLocks
from control.settings import MAX_PLAYBACK_TTL, ControlSettings
from control.signing import KeySealer, new_signing_key, public_jwks
from control.store import Repository, SigningKey
from mesh.bus import Bus, BusUnavailable
from mesh.bus_contract import JWKS_KEY, SIGNING_KEYS_CHANNEL, SigningKeysEvent

__all__ = ["KEY_JWKS", "SigningKeysMixin"]

KEY_JWKS = JWKS_KEY
# A retired signing key stays in the JWKS this long past the max token TTL.
_KEY_OVERLAP_SLACK = 300.0

_log = structlog.get_logger("control.service")

P = ParamSpec("P")
R = TypeVar("R")


def _kids(keys: list[SigningKey]) -> tuple[str, ...]:
    return tuple(k.kid for k in keys)


class SigningKeysMixin:
    """Signing-key methods of :class:`control.service.ControlService`."""

    repo: Repository
    bus: Bus
    locks: RecordLocks
    settings: ControlSettings
    _sealer: KeySealer
    _clock: Callable[[], float]
    _jwks_published: tuple[str, ...]

    if TYPE_CHECKING:

        async def _db(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R: ...

    def _current(self, keys: list[SigningKey], now: float) -> SigningKey | None:
        """The active key, unless there is none or it is due for rotation."""
        active = next((k for k in keys if k.retired_at is None), None)
        if active is None or now - active.created_at >= self.settings.signing_key_max_age:
            return None
        return active

    async def _active_key(self) -> SigningKey:
        now = self._clock()
        keys = await self._db(self.repo.signing_keys, now)
        active = self._current(keys, now)
        if active is not None and _kids(keys) == self._jwks_published:
            return active
        async with self.locks.hold("signing-keys"):
            now = self._clock()  # another process may have changed them meanwhile
            keys = await self._db(self.repo.signing_keys, now)
            active = self._current(keys, now)
            if active is None:
                return await self._rotate_locked(now, keys)
            if _kids(keys) != self._jwks_published:
                await self._publish_jwks(keys)
            return active

    async def _rotate_locked(self, now: float, keys: list[SigningKey]) -> SigningKey:
        """Rotate from ``keys`` (the database's, read under the lock) to a new key."""
        key = new_signing_key(self._sealer, now)
        await self.bus.set(KEY_JWKS, public_jwks([key, *keys]))
        try:
            await self._db(
                self.repo.rotate_signing_key,
                key,
                retire_expires_at=now + MAX_PLAYBACK_TTL + _KEY_OVERLAP_SLACK,
            )
        except BaseException:
            try:
                await self.bus.set(KEY_JWKS, public_jwks(keys))
            except BusUnavailable as exc:  # an unused extra public key; the resync fixes it
                _log.warning("jwks_undo_failed", kid=key.kid, error=str(exc))
            raise
        self._jwks_published = _kids([key, *keys])
        await self._announce_jwks(list(self._jwks_published))
        _log.info("signing_key_rotated", kid=key.kid)
        return key

    def check_signing_keys(self) -> None:
        """Raise :class:`SealError` unless every published signing key can be opened.

        Called before serving, so a missing or wrong ``--key-secret`` stops the
        start with a clear message instead of failing the first mint.
        """
        for key in self.repo.signing_keys(self._clock()):
            self._sealer.open(key.private_key)

    async def rotate_signing_key(self) -> SigningKey:
        """Start signing with a fresh key; the old one stays in the JWKS until its tokens expire."""
        async with self.locks.hold("signing-keys"):
            now = self._clock()
            return await self._rotate_locked(now, await self._db(self.repo.signing_keys, now))

    async def jwks(self) -> dict[str, Any]:
        await self._active_key()  # ensures a key exists (first start) and is fresh
        return public_jwks(await self._db(self.repo.signing_keys, self._clock()))

    async def _publish_jwks(self, keys: list[SigningKey]) -> None:
        await self.bus.set(KEY_JWKS, public_jwks(keys))
        self._jwks_published = _kids(keys)
        await self._announce_jwks(list(self._jwks_published))

    async def _announce_jwks(self, kids: list[str]) -> None:
        # POPs refresh at once instead of waiting out their unknown-kid refresh interval.
        try:
            await self.bus.publish(
                SIGNING_KEYS_CHANNEL, SigningKeysEvent(tuple(kids), self._clock()).encode()
            )
        except BusUnavailable as exc:
            _log.warning("jwks_announce_failed", error=str(exc))

    async def resync_signing_keys(self) -> None:
        """Forget expired keys and re-write the JWKS from the database."""
        await self._db(self.repo.purge_signing_keys, self._clock())
        self._jwks_published = ()
        await self._active_key()
