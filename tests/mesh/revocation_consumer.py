"""A POP-like process for the revocation propagation test: prints one JSON line per callback.

Run as ``python -m tests.mesh.revocation_consumer REDIS_URL``; each applied
revocation is reported as ``{"value": ..., "t": <unix time at the callback>}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from mesh.bus import RedisBus
from mesh.revocation import Revocation, RevocationSet


async def main(url: str) -> None:
    bus = RedisBus(url)
    revocations = RevocationSet()

    def report(revocation: Revocation) -> None:
        line = json.dumps({"value": revocation.value, "t": time.time()})
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    revocations.add_listener(report)
    try:
        await revocations.run(bus)
    finally:
        await bus.close()


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1]))
    except KeyboardInterrupt:
        pass
