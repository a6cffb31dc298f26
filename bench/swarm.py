"""A light viewer swarm: many MoQT viewer sessions in one process, counting and timing objects.

    python -m bench.swarm --url moqt://127.0.0.1:4443 --namespace stream/org_dev/lv_x \\
        --tokens tokens.json --report swarm.json [--rendition video] [--ramp 5] \\
        [--last 7:29] [--timeout 60] [--stack picoquic]

Each viewer joins like a real one (``clutchcall.streams`` and the web SDK): a
session with its playback token (AUTHORIZATION TOKEN in CLIENT_SETUP), the
``.catalog`` first (SUBSCRIBE + joining FETCH of its current group), then one
rendition out of it (``--rendition NAME``, else the video track of lowest
bitrate) with SUBSCRIBE + a joining FETCH of the current group: a late join at
the group the publisher is in, from its first object. The viewers join spread
over ``--ramp`` seconds, so they land at random points of a group (with
``--wait-go`` from the SIGUSR2 that follows the ``armed`` line).

Nothing is decoded: a media object is counted once (by group and object id, the
FETCH and the subscription may both bring it) and timed: arrival wall clock
minus the publisher's timestamp, the ``prft`` box (producer reference time)
the publisher put in front of the object's CMAF chunk (:mod:`bench._live`
stamps each object at send; ffmpeg writes one per chunk with ``-write_prft``).
Every process on the machine shares the wall clock, network namespaces
included. That keeps one viewer's cost near its QUIC stack's, so one process
holds hundreds of viewers; run several processes for more.

Per viewer the report has its start group (SUBSCRIBE_OK's largest location),
how many objects of that group and later it counted, its join time (connect ->
first media object) and, if it failed, why. Latencies (ms, 0.1 ms steps) are
pooled per process. The process prints ``ready {json}`` once every viewer has
joined or failed, ``complete`` once every live viewer has the last object
(``--last`` GROUP:OBJECT, or read from ``--last-file`` on SIGUSR1), and on
SIGTERM or ``--timeout`` writes the report and prints ``done``. :func:`summarize` turns reports and the published range into
delivered ratios and percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import random
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moqt.aio import QUIC_STACKS

from ._procs import percentile, rss_bytes

__all__ = ["SwarmSummary", "expected_objects", "main", "summarize"]

_NTP_UNIX_OFFSET = 2_208_988_800
_PRFT_SCAN = 256  # a prft box sits in front of the chunk's moof: look only at the head


def stamp_of(payload: bytes) -> float | None:
    """Wall-clock time in the first ``prft`` box near the head of ``payload`` (None if none)."""
    at = payload.find(b"prft", 0, _PRFT_SCAN)
    if at < 4 or len(payload) < at + 20:
        return None
    version = payload[at + 4]
    ntp = int.from_bytes(payload[at + 12 : at + 20], "big")
    if version not in (0, 1) or not ntp:
        return None
    return (ntp >> 32) - _NTP_UNIX_OFFSET + (ntp & 0xFFFFFFFF) / 2**32


@dataclass(slots=True)
class _Viewer:
    index: int
    started: float = 0.0  # wall clock, just before connecting
    start_group: int | None = None
    largest: tuple[int, int] | None = None  # SUBSCRIBE_OK's Largest Location
    first_object: float | None = None
    counted: int = 0
    seen: set[int] = field(default_factory=set)
    error: str | None = None
    closed: str | None = None
    has_last: bool = False
    # (group, key, received, sent) of objects that came before the start group was known
    early: list[tuple[int, int, float, float | None]] = field(default_factory=list)


def _namespace(text: str) -> tuple[bytes, ...]:
    return tuple(part.encode() for part in text.split("/"))


def _pick_rendition(payload: bytes, wanted: str | None) -> str:
    from media import Catalog

    catalog = Catalog.parse(payload)
    tracks = [t for t in catalog.tracks if t.init_data is not None]
    if wanted is not None:
        if catalog.track(wanted) is None:
            names = ", ".join(t.name for t in catalog.tracks)
            raise LookupError(f"the catalog has no track {wanted!r} (it has {names})")
        return wanted
    videos = [t for t in tracks if t.role == "video"] or tracks
    if not videos:
        raise LookupError("the catalog lists no track with initData")
    return min(videos, key=lambda t: (t.bitrate or 0, t.name)).name


async def _swarm(args: argparse.Namespace) -> int:
    from moqt.aio import ConnectionClosed, HandshakeError, SessionOptions, connect
    from moqt.errors import MoqtError
    from moqt.events import ObjectReceived, RequestRejected, SessionClosed
    from moqt.types import SubscriptionFilter

    tokens: list[dict[str, Any]] = args.token_list
    namespace = _namespace(args.namespace)
    viewers = [_Viewer(i) for i in range(len(tokens))]
    latencies: list[int] = []  # 0.1 ms steps, every viewer of this process
    unstamped = [0]
    # the last published object: --last, or later from --last-file on SIGUSR1
    mark: dict[str, Any] = {"last": None, "key": None}
    stop = asyncio.Event()
    complete = asyncio.Event()
    pending = [len(viewers)]  # live viewers without the last object
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    rng = random.Random(args.seed)

    def finished(viewer: _Viewer) -> None:
        if not viewer.has_last:
            viewer.has_last = True
            pending[0] -= 1
            if pending[0] == 0 and mark["last"] is not None:
                complete.set()

    def learn_last(text: str) -> None:
        """The last object is ``GROUP:OBJECT``: viewers that have it are finished."""
        try:
            group, obj = (int(x) for x in text.strip().split(":"))
        except ValueError:
            print(f"error: bad last object {text.strip()!r} (GROUP:OBJECT)", flush=True)
            return
        mark["last"], mark["key"] = (group, obj), (group << 24) | obj
        for viewer in viewers:
            if mark["key"] in viewer.seen and viewer.start_group is not None:
                finished(viewer)
        if pending[0] == 0:
            complete.set()

    if args.last:
        learn_last(args.last)
    if args.last_file:
        loop.add_signal_handler(
            signal.SIGUSR1, lambda: learn_last(Path(args.last_file).read_text())
        )

    def take(viewer: _Viewer, group: int, key: int, now: float, sent: float | None) -> None:
        """Count one new media object of ``viewer`` (its start group is known)."""
        assert viewer.start_group is not None
        if group < viewer.start_group:
            return
        if viewer.first_object is None:
            viewer.first_object = now
        viewer.counted += 1
        if group == viewer.start_group:
            pass  # the joined group's head was published before the join: no latency
        elif sent is None:
            unstamped[0] += 1
        else:
            latencies.append(round((now - sent) * 10000))
        if key == mark["key"]:
            finished(viewer)

    def handler(viewer: _Viewer, catalog: asyncio.Future[bytes], catalog_rids: set[int]) -> Any:
        seen = viewer.seen

        def on_event(_conn: object, event: object) -> None:
            if type(event) is ObjectReceived:
                payload = event.payload
                if not payload:
                    return
                if event.request_id in catalog_rids:
                    if not catalog.done():
                        catalog.set_result(payload)
                    return
                key = (event.group_id << 24) | event.object_id
                if key in seen:
                    return
                seen.add(key)
                now = time.time()
                if viewer.start_group is None:
                    # objects can come before our SUBSCRIBE_OK handling ran: weigh them then
                    viewer.early.append((event.group_id, key, now, stamp_of(payload)))
                    return
                take(viewer, event.group_id, key, now, stamp_of(payload))
            elif isinstance(event, SessionClosed) and viewer.closed is None:
                viewer.closed = event.reason or f"code {event.code}"
                finished(viewer)

        return on_event

    async def watch(viewer: _Viewer, token: str, delay: float, exits: contextlib.AsyncExitStack):
        await asyncio.sleep(delay)
        options = SessionOptions(auth_token=token.encode())
        viewer.started = time.time()
        catalog: asyncio.Future[bytes] = loop.create_future()
        catalog_rids: set[int] = set()
        try:
            conn = await exits.enter_async_context(
                connect(
                    args.url,
                    verify=False,
                    options=options,
                    stack=args.stack,
                    setup_timeout=args.join_timeout,
                )
            )
            conn.set_event_handler(handler(viewer, catalog, catalog_rids))
            session = conn.session
            rid = session.subscribe(
                namespace, b".catalog", filter=SubscriptionFilter.largest_object()
            )
            catalog_rids.add(rid)
            answer = await asyncio.wait_for(conn.wait_response(rid), args.join_timeout)
            if isinstance(answer, RequestRejected):
                raise LookupError(f"catalog refused: {answer.reason or answer.code}")
            catalog_rids.add(session.joining_fetch(rid, 0))
            payload = await asyncio.wait_for(catalog, args.join_timeout)
            name = _pick_rendition(payload, args.rendition)
            rid = session.subscribe(
                namespace, name.encode(), filter=SubscriptionFilter.largest_object()
            )
            answer = await asyncio.wait_for(conn.wait_response(rid), args.join_timeout)
            if isinstance(answer, RequestRejected):
                raise LookupError(f"{name} refused: {answer.reason or answer.code}")
            largest = getattr(answer, "largest", None)
            if largest is not None:
                viewer.start_group = largest.group
                viewer.largest = (largest.group, largest.object)
                session.joining_fetch(rid, 0)  # the current group from its first object
            else:  # nothing published yet: the subscription starts with the next group
                viewer.start_group = 0
            for early in viewer.early:
                take(viewer, *early)
            viewer.early.clear()
        except TimeoutError:  # before OSError: it is one
            viewer.error = f"join took over {args.join_timeout}s"
            finished(viewer)
        except (
            ConnectionClosed,
            HandshakeError,
            MoqtError,
            OSError,
            LookupError,
            ValueError,
        ) as exc:
            viewer.error = f"{type(exc).__name__}: {exc}"
            finished(viewer)

    if args.wait_go:
        go = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR2, go.set)
        print("armed", flush=True)
        await go.wait()
    async with contextlib.AsyncExitStack() as exits:
        ramp = max(0.0, args.ramp)
        delays = sorted(rng.uniform(0, ramp) for _ in viewers)
        await asyncio.gather(
            *(
                watch(v, t["token"], d, exits)
                for v, t, d in zip(viewers, tokens, delays, strict=True)
            )
        )
        joined = sum(v.error is None for v in viewers)
        print(f"ready {json.dumps({'joined': joined, 'rss': rss_bytes(os.getpid())})}", flush=True)
        if pending[0] == 0 and mark["last"] is not None:
            complete.set()
        deadline = loop.time() + args.timeout
        waiters = [asyncio.ensure_future(e.wait()) for e in (complete, stop)]
        await asyncio.wait(waiters, timeout=args.timeout, return_when=asyncio.FIRST_COMPLETED)
        if complete.is_set() and not stop.is_set():
            print("complete", flush=True)
            await asyncio.wait(
                [waiters[1]], timeout=max(0.0, deadline - loop.time())
            )  # stay connected until told (the harness scrapes the nodes meanwhile)
        for waiter in waiters:
            waiter.cancel()
        report = {
            "pid": os.getpid(),
            "rss": rss_bytes(os.getpid()),
            "stopped_at": time.time(),
            "unstamped": unstamped[0],
            "latency_tenth_ms": latencies,
            "viewers": [
                {
                    "start_group": v.start_group,
                    "largest": v.largest,
                    "counted": _counted(v, mark["key"]),
                    "join_ms": (v.first_object - v.started) * 1000 if v.first_object else None,
                    "started": v.started,
                    "error": v.error,
                    "closed": v.closed,
                    "missing": _missing(v, mark["last"], args.per_group),
                }
                for v in viewers
            ],
        }
        await asyncio.to_thread(Path(args.report).write_text, json.dumps(report))
    print("done", flush=True)
    return 0


def _counted(viewer: _Viewer, last_key: int | None) -> int:
    """Objects counted from the start group on; up to the last one published when known
    (later ones do not make up for a missing one)."""
    if last_key is None or viewer.start_group is None:
        return viewer.counted
    first = viewer.start_group << 24
    return sum(1 for key in viewer.seen if first <= key <= last_key)


def _missing(
    viewer: _Viewer, last: tuple[int, ...] | None, per_group: int
) -> list[tuple[int, int]]:
    """Up to 20 (group, object) from the viewer's start group to ``last`` it never got."""
    if last is None or per_group <= 0 or viewer.start_group is None:
        return []
    out = []
    for group in range(viewer.start_group, last[0] + 1):
        for obj in range(per_group if group < last[0] else last[1] + 1):
            if (group << 24) | obj not in viewer.seen:
                out.append((group, obj))
                if len(out) == 20:
                    return out
    return out


# --- summaries -----------------------------------------------------------------------


def expected_objects(start_group: int, *, last_seq: int, per_group: int) -> int:
    """Objects a viewer starting at ``start_group`` should count when the publisher sent
    sequence numbers 0..``last_seq`` (group = seq // per_group, object = seq % per_group)."""
    return max(0, last_seq + 1 - start_group * per_group)


@dataclass
class SwarmSummary:
    viewers: int = 0
    joined: int = 0
    failed: list[str] = field(default_factory=list)
    expected: int = 0
    counted: int = 0
    delivered_ratio: float = math.nan
    worst_viewer_ratio: float = math.nan
    viewers_below_999: int = 0  # viewers with < 99.9% of their objects
    latency_p50_ms: float = math.nan
    latency_p99_ms: float = math.nan
    latency_max_ms: float = math.nan
    join_p50_ms: float = math.nan
    join_p99_ms: float = math.nan
    unstamped: int = 0
    missing_examples: list[dict[str, Any]] = field(default_factory=list)
    rss_mb_per_process: float = 0.0


def summarize(reports: Sequence[dict[str, Any]], *, last_seq: int, per_group: int) -> SwarmSummary:
    """Delivered ratio (every joined viewer's counted / expected), latency and join
    percentiles over the reports of every swarm process."""
    s = SwarmSummary()
    lat: list[int] = []
    joins: list[float] = []
    ratios: list[float] = []
    for report in reports:
        lat += report["latency_tenth_ms"]
        s.unstamped += report["unstamped"]
        s.rss_mb_per_process = max(s.rss_mb_per_process, report["rss"] / 2**20)
        for v in report["viewers"]:
            s.viewers += 1
            if v["error"] is not None or v["start_group"] is None:
                s.failed.append(v["error"] or "no start group")
                continue
            s.joined += 1
            want = expected_objects(v["start_group"], last_seq=last_seq, per_group=per_group)
            got = min(v["counted"], want)
            s.expected += want
            s.counted += got
            ratio = got / want if want else 1.0
            ratios.append(ratio)
            s.viewers_below_999 += ratio < 0.999
            if v["join_ms"] is not None:
                joins.append(v["join_ms"])
            if v.get("missing"):
                s.missing_examples.append(
                    {"largest at SUBSCRIBE_OK": v["largest"], "missing": v["missing"][:5]}
                )
    # a viewer that could not join delivered nothing: count it against the ratio
    missing_joins = s.viewers - s.joined
    if s.expected or missing_joins:
        per_viewer = s.expected / max(1, s.joined) if s.joined else 1
        s.delivered_ratio = s.counted / max(1.0, s.expected + missing_joins * per_viewer)
    if ratios:
        s.worst_viewer_ratio = min(ratios + [0.0] * missing_joins)
    ms = [x / 10 for x in lat]
    s.latency_p50_ms = percentile(ms, 50)
    s.latency_p99_ms = percentile(ms, 99)
    s.latency_max_ms = max(ms) if ms else math.nan
    s.join_p50_ms = percentile(joins, 50)
    s.join_p99_ms = percentile(joins, 99)
    return s


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.swarm", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--url", required=True, help="moqt://HOST:PORT of a POP (or origin)")
    parser.add_argument("--namespace", required=True, help="e.g. stream/org_dev/lv_x")
    parser.add_argument("--tokens", required=True, help='JSON [{"token": ...}, ...], one a viewer')
    parser.add_argument("--report", required=True, help="where to write the JSON report")
    parser.add_argument("--rendition", default=None, help="track name (default: lowest video)")
    parser.add_argument("--stack", choices=QUIC_STACKS, default="picoquic")
    parser.add_argument("--ramp", type=float, default=0.0, help="spread the joins over S seconds")
    parser.add_argument("--last", default="", help="GROUP:OBJECT of the last published object")
    parser.add_argument("--wait-go", action="store_true", help="print 'armed', join on SIGUSR2")
    parser.add_argument(
        "--last-file",
        default="",
        help="on SIGUSR1 read GROUP:OBJECT of the last published object from this file",
    )
    parser.add_argument(
        "--per-group", type=int, default=0, help="objects per group: report what is missing"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="report after this long")
    parser.add_argument("--join-timeout", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    parts = args.last.split(":") if args.last else []
    if args.last and (len(parts) != 2 or not all(p.isdigit() for p in parts)):
        parser.error("--last takes GROUP:OBJECT, e.g. 7:29")
    try:
        args.token_list = json.loads(Path(args.tokens).read_text())
        if not isinstance(args.token_list, list) or not all(
            isinstance(t, dict) and isinstance(t.get("token"), str) for t in args.token_list
        ):
            raise ValueError('expected [{"token": "..."}, ...]')
    except (OSError, ValueError) as exc:
        parser.error(f"--tokens {args.tokens}: {exc}")
    import structlog

    # stdout carries the protocol lines only; library logs (warnings and up) go to stderr
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return asyncio.run(_swarm(args))


if __name__ == "__main__":
    sys.exit(main())
