"""Closing viewer sessions when their token is revoked or expires.

A POP registers every admitted viewer session with :class:`PlaybackGuard`
(``admit(key, claims, close)``).  The guard listens to the
:class:`~mesh.revocation.RevocationSet` and calls ``close(AuthFailure.REVOKED)``
for each matching session the moment a revocation is applied (indexed by jti
and sub, so a revocation costs O(matching sessions)), and its :meth:`run` loop
calls ``close(AuthFailure.EXPIRED)`` when a session's token reaches ``exp``.
``close`` is called at most once per admission and must not block (it should
start the session's close: reason ``auth_failed``, UNAUTHORIZED).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import structlog

from mesh.auth import AuthFailure, PlaybackClaims
from mesh.revocation import Revocation, RevocationSet

__all__ = ["GuardStatistics", "PlaybackGuard"]

_log = structlog.get_logger(__name__)

Close = Callable[[AuthFailure], None]


@dataclass(frozen=True, slots=True)
class GuardStatistics:
    sessions: int
    closed_revoked: int
    closed_expired: int


@dataclass(slots=True)
class _Entry:
    claims: PlaybackClaims
    close: Close
    generation: int


class PlaybackGuard:
    """See the module docstring. ``clock`` is wall-clock time (tokens carry unix seconds)."""

    def __init__(
        self, revocations: RevocationSet, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self._sessions: dict[Hashable, _Entry] = {}
        self._by_jti: dict[str, set[Hashable]] = {}
        self._by_sub: dict[str, set[Hashable]] = {}
        self._expiries: list[tuple[float, int, Hashable]] = []
        self._generation = itertools.count()
        self._wake = asyncio.Event()
        self._closed_revoked = 0
        self._closed_expired = 0
        self._remove_listener = revocations.add_listener(self._on_revocation)

    def admit(self, key: Hashable, claims: PlaybackClaims, close: Close) -> None:
        """Watch session ``key`` (replacing an earlier admission under the same key)."""
        self.release(key)
        generation = next(self._generation)
        self._sessions[key] = _Entry(claims, close, generation)
        self._by_jti.setdefault(claims.jti, set()).add(key)
        self._by_sub.setdefault(claims.sub, set()).add(key)
        if not self._expiries or claims.exp < self._expiries[0][0]:
            self._wake.set()
        heapq.heappush(self._expiries, (claims.exp, generation, key))

    def release(self, key: Hashable) -> None:
        """The session ended on its own: stop watching it."""
        entry = self._sessions.pop(key, None)
        if entry is None:
            return
        for index, value in ((self._by_jti, entry.claims.jti), (self._by_sub, entry.claims.sub)):
            keys = index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[value]
        if len(self._expiries) > 2 * len(self._sessions) + 64:
            # Released sessions leave their heap entries behind until exp: compact.
            self._expiries = [(e.claims.exp, e.generation, k) for k, e in self._sessions.items()]
            heapq.heapify(self._expiries)

    def close(self) -> None:
        """Detach from the revocation set (the guard is no longer used)."""
        self._remove_listener()

    def _on_revocation(self, revocation: Revocation) -> None:
        index = self._by_jti if revocation.kind == "jti" else self._by_sub
        for key in list(index.get(revocation.value, ())):
            entry = self._sessions.get(key)
            if entry is not None and entry.claims.revoked_by(revocation):
                self._closed_revoked += 1
                self._end(key, entry, AuthFailure.REVOKED)

    def _end(self, key: Hashable, entry: _Entry, reason: AuthFailure) -> None:
        self.release(key)
        _log.info("session_auth_ended", reason=reason.value, sub=entry.claims.sub)
        try:
            entry.close(reason)
        except Exception:
            _log.exception("session_close_failed", reason=reason.value)

    async def run(self) -> None:
        """Close sessions at their token's ``exp`` until cancelled."""
        while True:
            self._expire_due()
            self._wake.clear()
            delay = self._expiries[0][0] - self._clock() if self._expiries else 60.0
            try:
                async with asyncio.timeout(min(max(delay, 0.0), 60.0)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _expire_due(self) -> None:
        now = self._clock()
        while self._expiries and self._expiries[0][0] <= now:
            _, generation, key = heapq.heappop(self._expiries)
            entry = self._sessions.get(key)
            if entry is not None and entry.generation == generation:
                self._closed_expired += 1
                self._end(key, entry, AuthFailure.EXPIRED)

    def statistics(self) -> GuardStatistics:
        return GuardStatistics(
            sessions=len(self._sessions),
            closed_revoked=self._closed_revoked,
            closed_expired=self._closed_expired,
        )
