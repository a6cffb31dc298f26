"""PlaybackGuard: sessions close on revocation (at once) and at their token's exp."""

from __future__ import annotations

import asyncio
import contextlib
import time

from mesh.auth import AuthFailure, PlaybackClaims
from mesh.guard import PlaybackGuard
from mesh.revocation import Revocation, RevocationSet
from tests.mesh.conftest import wait_until


def claims(sub: str, jti: str, *, iat: float = 0.0, exp: float | None = None) -> PlaybackClaims:
    return PlaybackClaims(sub, "org_1", "aud", jti, iat, exp or time.time() + 600, None, "k1")


def test_revocations_close_only_matching_sessions() -> None:
    revocations = RevocationSet()
    guard = PlaybackGuard(revocations)
    closed: dict[str, AuthFailure] = {}

    def closer(name: str):  # type: ignore[no-untyped-def]
        return lambda reason: closed.__setitem__(name, reason)

    guard.admit("a", claims("lv_1", "jt_a", iat=100), closer("a"))
    guard.admit("b", claims("lv_1", "jt_b", iat=200), closer("b"))
    guard.admit("c", claims("lv_2", "jt_c", iat=100), closer("c"))
    guard.admit("d", claims("lv_2", "jt_d", iat=100), closer("d"))
    guard.release("d")
    later = time.time() + 600
    revocations.apply(Revocation("jti", "jt_c", later))
    assert closed == {"c": AuthFailure.REVOKED}
    revocations.apply(Revocation("sub", "lv_1", later, before=150))  # b was minted after
    assert closed == {"c": AuthFailure.REVOKED, "a": AuthFailure.REVOKED}
    revocations.apply(Revocation("jti", "jt_d", later))  # released: nobody to close
    assert set(closed) == {"a", "c"}
    stats = guard.statistics()
    assert (stats.sessions, stats.closed_revoked) == (1, 2)
    guard.close()
    revocations.apply(Revocation("jti", "jt_b", later))
    assert "b" not in closed


def test_close_failure_is_contained_and_readmission_replaces() -> None:
    revocations = RevocationSet()
    guard = PlaybackGuard(revocations)
    calls: list[str] = []

    def broken(_: AuthFailure) -> None:
        calls.append("broken")
        raise RuntimeError("close bug")

    guard.admit("s", claims("lv_1", "jt_old"), broken)
    guard.admit("s", claims("lv_1", "jt_new"), lambda r: calls.append(r.value))
    revocations.apply(Revocation("jti", "jt_old", time.time() + 60))
    assert calls == []
    revocations.apply(Revocation("jti", "jt_new", time.time() + 60))
    assert calls == ["revoked"]


async def test_sessions_close_at_exp() -> None:
    guard = PlaybackGuard(RevocationSet())
    closed: list[tuple[str, AuthFailure, float]] = []
    now = time.time()

    def closer(name: str, exp: float):  # type: ignore[no-untyped-def]
        return lambda reason: closed.append((name, reason, time.time() - exp))

    task = asyncio.create_task(guard.run())
    try:
        guard.admit("late", claims("lv", "j1", exp=now + 0.4), closer("late", now + 0.4))
        await asyncio.sleep(0.05)
        # An earlier expiry added while the loop sleeps wakes it up.
        guard.admit("early", claims("lv", "j2", exp=now + 0.15), closer("early", now + 0.15))
        guard.admit("gone", claims("lv", "j3", exp=now + 0.2), closer("gone", now + 0.2))
        guard.release("gone")
        await wait_until(lambda: len(closed) == 2, within=2)
        await asyncio.sleep(0.1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [(n, r) for n, r, _ in closed] == [
        ("early", AuthFailure.EXPIRED),
        ("late", AuthFailure.EXPIRED),
    ]
    assert all(0 <= lateness < 0.25 for _, _, lateness in closed)
    assert guard.statistics().closed_expired == 2


def test_heap_is_compacted_under_churn() -> None:
    guard = PlaybackGuard(RevocationSet())
    for i in range(1000):
        guard.admit(i, claims("lv", f"j{i}"), lambda r: None)
        guard.release(i)
    assert len(guard._expiries) <= 65
