"""A POP-like process for the revocation propagation test.

Run as ``python -m tests.mesh.revocation_consumer REDIS_URL N``: it holds N
viewer sessions (tokens ``jt_0`` .. ``jt_<N-1>``) in a :class:`PlaybackGuard`
and prints one JSON line ``{"value": jti, "t": unix time}`` when a session is
closed by a revocation, and one for every ``probe*`` revocation it applies (so
the test knows the subscription is live).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from mesh.auth import AuthFailure, PlaybackClaims
from mesh.bus import RedisBus
from mesh.guard import PlaybackGuard
from mesh.logging import configure_logging
from mesh.revocation import Revocation, RevocationSet


def report(value: str) -> None:
    sys.stdout.write(json.dumps({"value": value, "t": time.time()}) + "\n")
    sys.stdout.flush()


async def main(url: str, sessions: int) -> None:
    # Logs go to stderr as JSON (an entry point configures logging); stdout is the report.
    configure_logging(node="consumer", role="pop", level="warning", stream=sys.stderr)
    bus = RedisBus(url)
    revocations = RevocationSet()
    guard = PlaybackGuard(revocations)
    exp = time.time() + 3600

    def on_probe(revocation: Revocation) -> None:
        if revocation.value.startswith("probe"):
            report(revocation.value)

    def closer(jti: str):  # type: ignore[no-untyped-def]
        def close(reason: AuthFailure) -> None:
            assert reason is AuthFailure.REVOKED
            report(jti)

        return close

    for n in range(sessions):
        claims = PlaybackClaims("lv_x", "org_1", "aud", f"jt_{n}", time.time(), exp, None, "k")
        guard.admit(n, claims, closer(f"jt_{n}"))
    revocations.add_listener(on_probe)
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(guard.run())
            tg.create_task(revocations.run(bus))
    finally:
        await bus.close()


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    except KeyboardInterrupt:
        pass
