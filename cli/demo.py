"""``clutchcall demo``: a relay, a synthetic publisher and a subscriber in one process.

The smallest thing that shows a stream flowing: the publisher sends 30 objects/s
(a new group every 2 s, its send time in every payload) over raw QUIC to a relay
on a free local port; the subscriber, a separate MoQT session, prints once a
second what it receives: objects/s, Mbit/s, the current group and latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

from mesh.logging import configure_logging
from mesh.relay import RelayConfig
from mesh.relay._node import RelayNode
from moqt.aio import connect, write_self_signed
from moqt.errors import RequestErrorCode
from moqt.events import Event, ObjectReceived, RequestRejected, SubscribeRequested, Unsubscribed

__all__ = ["register"]

NAMESPACE = (b"demo", b"synthetic")
TRACK = b"video"
_STAMP = struct.Struct(">Q")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="relay + synthetic publisher + subscriber, printing what flows",
        description=__doc__,
    )
    parser.add_argument(
        "--seconds", type=float, default=0.0, help="stop after this long (default: until Ctrl-C)"
    )
    parser.add_argument("--bitrate", type=float, default=2.5e6, help="publisher bitrate in bit/s")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    configure_logging(node="demo", role="demo", level="warning", json=False)
    try:
        asyncio.run(_demo(args.seconds, args.bitrate))
    except KeyboardInterrupt:
        pass
    return 0


async def _publisher(url: str, bitrate: float, stop: asyncio.Event) -> None:
    fps, per_group = 30, 60
    padding = bytes(max(0, int(bitrate / 8 / fps) - _STAMP.size))
    async with connect(url, verify=False) as conn:
        session = conn.session
        subscriptions: dict[int, object] = {}

        def on_event(_conn: object, event: Event) -> None:
            if isinstance(event, SubscribeRequested):
                if (event.namespace, event.name) == (NAMESPACE, TRACK):
                    session.accept_subscribe(event.request_id)
                    subscriptions[event.request_id] = None
                else:
                    session.reject_request(
                        event.request_id, RequestErrorCode.DOES_NOT_EXIST, "no such track"
                    )
            elif isinstance(event, Unsubscribed):
                subscriptions.pop(event.request_id, None)

        conn.set_event_handler(on_event)
        answer = await conn.wait_response(session.publish_namespace(NAMESPACE))
        if isinstance(answer, RequestRejected):
            raise RuntimeError(f"relay refused the namespace: {answer.reason}")
        start, seq = time.monotonic(), 0
        while not stop.is_set():
            group, obj = divmod(seq, per_group)
            await asyncio.sleep(max(0.0, start + seq / fps - time.monotonic()))
            payload = _STAMP.pack(time.monotonic_ns()) + padding
            for sub, handle in list(subscriptions.items()):
                if obj == 0 or handle is None:
                    if handle is not None:
                        session.end_subgroup(handle)  # type: ignore[arg-type]
                    handle = subscriptions[sub] = session.open_subgroup(sub, group)
                session.write_object(handle, obj, payload)  # type: ignore[arg-type]
            seq += 1


async def _subscriber(url: str, stop: asyncio.Event) -> None:
    window: list[tuple[int, int, float]] = []  # (group, bytes, latency ms)

    def on_event(_conn: object, event: Event) -> None:
        if isinstance(event, ObjectReceived) and len(event.payload) >= _STAMP.size:
            latency = (time.monotonic_ns() - _STAMP.unpack_from(event.payload)[0]) / 1e6
            window.append((event.group_id, len(event.payload), latency))

    async with connect(url, verify=False) as conn:
        for _ in range(50):  # the publisher may still be announcing
            answer = await conn.wait_response(conn.session.subscribe(NAMESPACE, TRACK))
            if not isinstance(answer, RequestRejected):
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("could not subscribe to the demo track")
        conn.set_event_handler(on_event)
        print(
            f"subscribed to {'/'.join(p.decode() for p in NAMESPACE)}/{TRACK.decode()} at {url}",
            flush=True,
        )
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            batch, window[:] = list(window), []
            if not batch:
                print("  waiting for objects...", flush=True)
                continue
            latencies = [lat for _, _, lat in batch]
            print(
                f"  {len(batch):3d} objects/s  {sum(b for _, b, _ in batch) * 8 / 1e6:5.2f} Mbit/s  "
                f"group {batch[-1][0]:4d}  latency p50 {statistics.median(latencies):5.1f} ms  "
                f"max {max(latencies):5.1f} ms",
                flush=True,
            )


async def _demo(seconds: float, bitrate: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if seconds:
        loop.call_later(seconds, stop.set)
    node = RelayNode(RelayConfig())
    with tempfile.TemporaryDirectory(prefix="clutchcall-demo-") as tmp:
        cert, key = write_self_signed(Path(tmp), ["localhost"])
        await node.start("127.0.0.1", 0, cert, key)
        url = f"moqt://127.0.0.1:{node.address[1]}"
        print(f"relay listening on {url} (raw QUIC; WebTransport on the same port)", flush=True)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_publisher(url, bitrate, stop))
                tg.create_task(_subscriber(url, stop))
        finally:
            await node.drain(grace=1.0)
            await node.stop()
    print("demo stopped", file=sys.stderr)
