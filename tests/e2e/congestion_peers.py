"""The two ends of the congestion end-to-end test, each run as its own process.

    python -m tests.e2e.congestion_peers publisher --url moqt://relay:4443 --duration 15
    python -m tests.e2e.congestion_peers viewer --url moqt://relay:4443 --duration 15

The publisher announces ``e2e/congestion`` and, once the relay subscribed to all
three tracks, sends them for ``--duration`` seconds: a new group (one subgroup
stream) per track every ``--group`` seconds, each object carrying its send time
(CLOCK_MONOTONIC: the same clock in every network namespace of the machine)
and a sequence number. It prints ``sent {json}`` with what it sent per track.

The viewer subscribes to the three tracks, records per object the arrival
latency, and prints ``report {json}`` once every track ended (PUBLISH_DONE) or
the time is up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any

NAMESPACE = (b"e2e", b"congestion")
STAMP = struct.Struct(">QI")  # send time (ns, CLOCK_MONOTONIC), sequence number


@dataclass(frozen=True, slots=True)
class TrackSpec:
    name: bytes
    kbit_s: int
    objects_per_s: int
    publisher_priority: int

    @property
    def object_size(self) -> int:
        return max(STAMP.size, self.kbit_s * 1000 // 8 // self.objects_per_s)


TRACKS = (
    TrackSpec(b"audio", 128, 50, 0),
    TrackSpec(b"video-low", 600, 30, 64),
    TrackSpec(b"video-high", 2500, 30, 128),
)


async def publisher(args: argparse.Namespace) -> int:
    from moqt.aio import connect
    from moqt.errors import PublishDoneCode, RequestErrorCode
    from moqt.events import Event, RequestRejected, SubscribeRequested, Unsubscribed

    specs = {spec.name: spec for spec in TRACKS}
    async with connect(args.url, verify=False) as conn:
        session = conn.session
        subscriptions: dict[bytes, int] = {}
        all_subscribed = asyncio.Event()

        def on_event(_conn: object, event: Event) -> None:
            if isinstance(event, SubscribeRequested):
                if event.namespace != NAMESPACE or event.name not in specs:
                    session.reject_request(
                        event.request_id, RequestErrorCode.DOES_NOT_EXIST, "no such track"
                    )
                    return
                session.accept_subscribe(event.request_id)
                subscriptions[event.name] = event.request_id
                if len(subscriptions) == len(specs):
                    all_subscribed.set()
            elif isinstance(event, Unsubscribed):
                for name, rid in list(subscriptions.items()):
                    if rid == event.request_id:
                        del subscriptions[name]

        conn.set_event_handler(on_event)
        request_id = session.publish_namespace(NAMESPACE)
        if isinstance(await conn.wait_response(request_id), RequestRejected):
            print("error publish_namespace rejected", flush=True)
            return 1
        print("ready", flush=True)
        await asyncio.wait_for(all_subscribed.wait(), args.timeout)
        start = time.monotonic()
        sent: dict[str, int] = {}

        async def send(spec: TrackSpec) -> None:
            interval = 1.0 / spec.objects_per_s
            per_group = round(args.group * spec.objects_per_s)
            total = round(args.duration * spec.objects_per_s)
            padding = bytes(spec.object_size - STAMP.size)
            handle = None
            for seq in range(total):
                delay = start + seq * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                rid = subscriptions.get(spec.name)
                if rid is None:
                    break
                group, obj = divmod(seq, per_group)
                if obj == 0:
                    if handle is not None:
                        session.end_subgroup(handle)
                    handle = session.open_subgroup(rid, group, 0, priority=spec.publisher_priority)
                assert handle is not None
                session.write_object(handle, obj, STAMP.pack(time.monotonic_ns(), seq) + padding)
                sent[spec.name.decode()] = seq + 1
            if handle is not None:
                session.end_subgroup(handle)

        async with asyncio.TaskGroup() as tasks:
            for spec in TRACKS:
                tasks.create_task(send(spec))
        print(f"sent {json.dumps(sent)}", flush=True)
        await asyncio.sleep(args.linger)
        for rid in subscriptions.values():
            session.publish_done(rid, PublishDoneCode.TRACK_ENDED, "done")
        await asyncio.sleep(0.5)
    return 0


async def viewer(args: argparse.Namespace) -> int:
    from moqt.aio import connect
    from moqt.events import Event, ObjectReceived, PublishDoneReceived, RequestRejected

    names: dict[int, str] = {}
    samples: dict[str, list[tuple[float, int, float]]] = {s.name.decode(): [] for s in TRACKS}
    done: dict[str, int] = {}
    finished = asyncio.Event()
    async with connect(args.url, verify=False) as conn:
        session = conn.session

        def on_event(_conn: object, event: Event) -> None:
            if isinstance(event, ObjectReceived) and len(event.payload) >= STAMP.size:
                now = time.monotonic_ns()
                stamp, seq = STAMP.unpack_from(event.payload)
                name = names.get(event.request_id)
                if name is not None:
                    # (arrival time s, sequence, latency ms)
                    samples[name].append((now / 1e9, seq, (now - stamp) / 1e6))
            elif isinstance(event, PublishDoneReceived):
                name = names.get(event.request_id)
                if name is not None:
                    done[name] = event.code
                    if len(done) == len(TRACKS):
                        finished.set()

        conn.set_event_handler(on_event)
        for spec in TRACKS:
            rid = session.subscribe(NAMESPACE, spec.name, priority=args.subscriber_priority)
            names[rid] = spec.name.decode()
            answer = await conn.wait_response(rid)
            if isinstance(answer, RequestRejected):
                print(f"error subscribe {spec.name!r}: {answer.reason}", flush=True)
                return 1
        print("ready", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished.wait(), args.duration + args.timeout)
    report: dict[str, Any] = {"samples": samples, "done": done}
    print(f"report {json.dumps(report)}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="congestion_peers")
    parser.add_argument("role", choices=["publisher", "viewer"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--group", type=float, default=1.0, help="group duration (s)")
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--linger", type=float, default=2.0)
    parser.add_argument("--subscriber-priority", type=int, default=128)
    args = parser.parse_args(argv)
    role = publisher if args.role == "publisher" else viewer
    return asyncio.run(role(args))


if __name__ == "__main__":
    sys.exit(main())
