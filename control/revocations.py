"""Playback-token revocations, mixed into :class:`control.service.ControlService`.

A revocation is a database row and a Redis record ``clutchcall:revoked:<kind>:<target>``
(with a TTL to its expiry), announced on ``clutchcall:revocations``. Revocations change
one at a time (the ``revocations`` lock of :mod:`control.locks`), and each is written
to both stores or to neither:

1. the database row is written (the row it replaces is kept in memory),
2. the Redis record is written; if Redis refuses, the row is restored and the caller
   gets :class:`~mesh.bus.BusUnavailable` (503): nothing changed,
3. only then is it announced. A lost announcement is logged, not raised: the records
   are the authority and every subscriber re-reads them when its subscription comes
   back (the bus's resync message), which it must, since Redis dropped it.

A change that goes with a revocation (deleting an input or an asset revokes its
tokens) runs inside :meth:`RevocationsMixin.revoking_sub`: if the change fails, the
revocation is undone in both stores before it was ever announced.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

import structlog

from control.errors import not_found
from control.locks import RecordLocks
from control.metrics import ControlMetrics
from control.settings import MAX_PLAYBACK_TTL
from control.store import Repository, Revocation
from mesh.bus import Bus, BusUnavailable
from mesh.bus_contract import REVOCATIONS_CHANNEL, REVOKED_PREFIX

__all__ = ["CH_REVOCATIONS", "REVOKED_PREFIX", "RevocationResult", "RevocationsMixin"]

CH_REVOCATIONS = REVOCATIONS_CHANNEL

_log = structlog.get_logger("control.service")

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class RevocationResult:
    kind: Literal["jti", "sub"]
    target: str
    before: float | None
    expires_at: float
    revoked_at: float


def _record(rev: Revocation) -> dict[str, Any]:
    if rev.kind == "jti":
        return {"exp": rev.expires_at}
    return {"before": rev.before, "exp": rev.expires_at}


class RevocationsMixin:
    """Revocation methods of :class:`control.service.ControlService`."""

    repo: Repository
    bus: Bus
    locks: RecordLocks
    metrics: ControlMetrics
    _clock: Callable[[], float]

    if TYPE_CHECKING:

        async def _db(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R: ...

    async def _set_revocation_record(self, rev: Revocation) -> None:
        ttl = max(1.0, rev.expires_at - self._clock())
        await self.bus.set(f"{REVOKED_PREFIX}{rev.id}", _record(rev), ttl=ttl)

    async def _stage_revocation(self, rev: Revocation) -> Revocation | None:
        """Write ``rev`` to the database and Redis (not announced); the row it replaced.
        Raises with both stores unchanged. The caller holds the revocations lock."""
        prior = await self._db(self.repo.get_revocation, rev.id)
        await self._db(self.repo.upsert_revocation, rev)
        try:
            await self._set_revocation_record(rev)
        except BaseException:
            await self._unstage_revocation(rev, prior)
            raise
        return prior

    async def _unstage_revocation(self, rev: Revocation, prior: Revocation | None) -> None:
        """Put back what :meth:`_stage_revocation` replaced, in both stores."""
        if prior is None:
            await self._db(self.repo.delete_revocation, rev.id)
        else:
            await self._db(self.repo.upsert_revocation, prior)
        try:
            if prior is None or prior.expires_at <= self._clock():
                await self.bus.delete(f"{REVOKED_PREFIX}{rev.id}")
            else:
                await self._set_revocation_record(prior)
        except BusUnavailable as exc:
            # Redis may hold the staged record: the resync deletes records without a row.
            _log.warning("revocation_undo_incomplete", revocation=rev.id, error=str(exc))

    async def _announce_revocation(self, rev: Revocation) -> None:
        message: dict[str, Any] = (
            {"jti": rev.target} if rev.kind == "jti" else {"sub": rev.target, "before": rev.before}
        )
        message.update({"exp": rev.expires_at, "at": rev.created_at})
        self.metrics.revocations.labels(rev.kind).inc()
        try:
            await self.bus.publish(CH_REVOCATIONS, message)
        except BusUnavailable as exc:
            _log.warning("revocation_announce_failed", revocation=rev.id, error=str(exc))

    async def revoke_token(self, org_id: str, jti: str) -> RevocationResult:
        if len(jti) > 64:
            raise not_found("playback token", jti[:64])
        token = await self._db(self.repo.get_playback_token, org_id, jti)
        if token is None:
            raise not_found("playback token", jti)
        async with self.locks.hold("revocations"):
            now = self._clock()
            rev = Revocation("jti", jti, org_id, None, float(token.expires_at), now)
            await self._stage_revocation(rev)
        await self._announce_revocation(rev)
        _log.info("token_revoked", org=org_id, jti=jti)
        return RevocationResult("jti", jti, None, rev.expires_at, now)

    @contextlib.asynccontextmanager
    async def revoking_sub(
        self, org_id: str, sub: str, *families: str
    ) -> AsyncIterator[RevocationResult]:
        """Revoke every token of ``sub`` issued up to now, together with the change the
        ``async with`` block makes: the revocation is in both stores when the block
        starts (holding the revocations lock and those of ``families``), is undone in
        both if the block raises, and is announced after it succeeded."""
        async with self.locks.hold("revocations", *families):
            now = self._clock()
            # Tokens carry iat with millisecond precision (signing.py).
            before = round(now, 3)
            rev = Revocation("sub", sub, org_id, before, now + MAX_PLAYBACK_TTL, now)
            prior = await self._stage_revocation(rev)
            try:
                yield RevocationResult("sub", sub, before, rev.expires_at, now)
            except BaseException:
                await self._unstage_revocation(rev, prior)
                raise
        await self._announce_revocation(rev)

    async def _revoke_sub(self, org_id: str, sub: str) -> RevocationResult:
        async with self.revoking_sub(org_id, sub) as result:
            pass
        return result

    async def resync_revocations(self) -> None:
        """Make Redis hold exactly the database's active revocations."""
        async with self.locks.hold("revocations"):
            now = self._clock()
            active = await self._db(self.repo.active_revocations, now)
            for rev in active:
                await self._set_revocation_record(rev)
            known = {f"{REVOKED_PREFIX}{rev.id}" for rev in active}
            for key in await self.bus.keys(f"{REVOKED_PREFIX}*"):
                if key not in known:  # an undo that could not reach Redis
                    await self.bus.delete(key)
