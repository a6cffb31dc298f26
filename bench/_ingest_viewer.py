"""A timing viewer for :mod:`bench.ingest`: every rendition of a broadcast, each chunk's timing.

    python -m bench._ingest_viewer --url moqt://pop:5443 --namespace stream/org_dev/lv_x \\
        --token JWT --tracks 720p,360p,audio --report FILE [--timeout 60]

It reads the catalog (SUBSCRIBE + joining FETCH of its current group) for the
tracks' init segments, then SUBSCRIBEs to every track from its next group start.
For each media object it records the wall-clock receive time (``time.time()``,
taken when the object is whole) and what its CMAF chunks say: the earliest
presentation time and duration (seconds, on the track's timeline) and the
``prft`` wall-clock time at which ffmpeg wrote the chunk (``None`` without one).
It prints ``ready`` once subscribed, and on SIGTERM (or ``--timeout``) writes
the JSON report and prints ``done``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from media import CATALOG_TRACK, Catalog, InitSegment, MediaError, parse_object, split_fmp4

__all__ = ["main"]


def _init_of(catalog: Catalog, name: str) -> InitSegment:
    track = catalog.track(name)
    if track is None or track.init_data is None:
        raise LookupError(f"catalog has no track {name!r} with initData")
    items = split_fmp4(track.init_data)
    if len(items) != 1 or not isinstance(items[0], InitSegment):
        raise ValueError(f"track {name!r}: initData is not one init segment")
    return items[0]


async def _run(args: argparse.Namespace) -> int:
    from moqt.aio import SessionOptions, connect
    from moqt.events import ObjectReceived, RequestRejected
    from moqt.types import SubscriptionFilter

    namespace = tuple(part.encode() for part in args.namespace.split("/"))
    names = [n for n in args.tracks.split(",") if n]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    catalog_ready: asyncio.Future[Catalog] = asyncio.get_running_loop().create_future()
    by_rid: dict[int, str] = {}
    inits: dict[str, InitSegment] = {}
    records: list[dict[str, Any]] = []
    errors: list[str] = []

    def on_event(_conn: object, event: object) -> None:
        if not isinstance(event, ObjectReceived) or not event.payload:
            return
        received = time.time()
        name = by_rid.get(event.request_id)
        if name == CATALOG_TRACK:
            if not catalog_ready.done():
                try:
                    catalog_ready.set_result(Catalog.parse(event.payload))
                except (MediaError, ValueError) as exc:
                    catalog_ready.set_exception(exc)
            return
        if name is None or name not in inits:
            return
        try:
            chunks = parse_object(event.payload, inits[name])
        except (MediaError, ValueError) as exc:
            errors.append(f"{name} {event.group_id}/{event.object_id}: {exc}")
            return
        first, last = chunks[0], chunks[-1]
        records.append(
            {
                "track": name,
                "group": event.group_id,
                "object": event.object_id,
                "received": received,
                "start": first.earliest_presentation_time / first.timescale,
                "end": (last.earliest_presentation_time + last.duration) / last.timescale,
                "prft": last.prft.wallclock if last.prft is not None else None,
            }
        )

    options = SessionOptions(auth_token=args.token.encode())
    async with connect(args.url, verify=False, options=options) as conn:
        conn.set_event_handler(on_event)
        rid = conn.session.subscribe(
            namespace, CATALOG_TRACK.encode(), filter=SubscriptionFilter.largest_object()
        )
        by_rid[rid] = CATALOG_TRACK
        answer = await asyncio.wait_for(conn.wait_response(rid), args.timeout)
        if isinstance(answer, RequestRejected):
            raise RuntimeError(f"catalog subscription rejected: {answer.reason}")
        by_rid[conn.session.joining_fetch(rid, 0)] = CATALOG_TRACK
        catalog = await asyncio.wait_for(catalog_ready, args.timeout)
        for name in names:
            inits[name] = _init_of(catalog, name)
            rid = conn.session.subscribe(
                namespace, name.encode(), filter=SubscriptionFilter.next_group_start()
            )
            by_rid[rid] = name
            answer = await asyncio.wait_for(conn.wait_response(rid), args.timeout)
            if isinstance(answer, RequestRejected):
                raise RuntimeError(f"subscription to {name!r} rejected: {answer.reason}")
        print("ready", flush=True)
        try:
            await asyncio.wait_for(stop.wait(), args.timeout)
        except TimeoutError:
            errors.append(f"no SIGTERM within {args.timeout}s")
    report = {"objects": records, "errors": errors[:20], "error_count": len(errors)}
    await asyncio.to_thread(Path(args.report).write_text, json.dumps(report))
    print("done", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench._ingest_viewer", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--tracks", required=True, help="comma-separated track names")
    parser.add_argument("--report", required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    import logging

    import structlog

    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
