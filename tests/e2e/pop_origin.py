"""An origin stand-in process for the POP end-to-end tests (``python -m tests.e2e.pop_origin``).

A real relay node that registers its node record and the namespace route in
Redis (``BUS_CONTRACT.md``), fed by an in-process publisher with clock-aligned
groups (see :mod:`tests.pop.lab`).  Prints one JSON line ``{"event":
"origin_ready", "quic": ...}`` on stdout when serving; runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
from pathlib import Path

from mesh.bus import RedisBus
from moqt.aio import write_self_signed
from tests.pop.lab import Origin, namespace_of


async def main(args: argparse.Namespace) -> None:
    bus = RedisBus(args.redis, retry_interval=0.2, timeout=0.5)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    with tempfile.TemporaryDirectory(prefix="pop-origin-") as tmp:
        cert, key = write_self_signed(Path(tmp))
        origin = Origin(
            bus,
            args.node_id,
            args.region,
            cert,
            key,
            tuple(namespace_of(sub) for sub in args.sub),
            heartbeat=args.heartbeat,
            ttl=args.ttl,
            group_ms=args.group_ms,
        )
        async with origin.running():
            print(json.dumps({"event": "origin_ready", "quic": origin.quic}), flush=True)
            await stop.wait()
    await bus.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--region", default="eu")
    parser.add_argument("--sub", action="append", default=[])
    parser.add_argument("--group-ms", type=int, default=200)
    parser.add_argument("--heartbeat", type=float, default=0.5)
    parser.add_argument("--ttl", type=float, default=1.5)
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
