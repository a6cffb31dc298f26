"""Live CMAF for benchmarks through a real origin: a stamped looping clip, a publisher, viewers.

The origin validates what it ingests (a CMSF catalog with ``initData``, whole
CMAF chunks, groups starting at a keyframe), so synthetic byte strings will not
do. :func:`make_clip` encodes a short real H.264 clip once with ffmpeg (CBR with
filler, one frame per CMAF chunk, one GOP per group) and the publisher loops
it: object ``seq`` is frame ``seq % len(clip)`` with its decode time shifted
forward by whole clip lengths and a ``prft`` box (producer reference time, the
wall clock at send) in front of its ``moof``. Every hop forwards payloads
untouched, so a viewer reads the send time back with :func:`sent_at`; all
processes share the machine's clock, network namespaces included.

Roles (separate processes, so the relay under test never shares their CPU)::

    python -m bench._live publisher --url moqt://origin:4443 --namespace stream/org_dev/lv_bench ...
    python -m bench._live viewers --url moqt://pop:5443 --namespace ... --tokens FILE --report FILE

The publisher prints ``primed`` after ``--prime-groups`` groups, waits for
SIGUSR1 when ``--wait-go`` is set (the harness measures idle viewers there),
then sends ``--duration`` seconds (0: until SIGTERM) and prints ``sent {json}``.
Viewers subscribe with a Largest Object filter (and with ``--join`` a joining FETCH of the
current group: the late-join path), print ``ready`` once every one is
subscribed, and write a JSON report when every one has ``--expect`` objects,
at ``--timeout``, or on SIGTERM, then print ``done`` (with ``--hold S`` they
print ``complete`` at that point and stay connected until SIGTERM, up to S s, so the
report also says when and why revoked sessions were closed). The report says how each
live subgroup stream stood when the viewer stopped (``open``, ``fin`` or ``reset``): an
object missing behind the last one received on a stream that was still open was in
flight at the stop, not lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from media import Catalog, CatalogTrack, Fragment, InitSegment, split_fmp4
from media.fmp4 import shift_fragment
from moqt.aio import QUIC_STACKS
from moqt.events import SubgroupStreamEnded, SubgroupStreamOpened, SubgroupStreamReset

__all__ = ["Clip", "make_clip", "namespace_of", "sent_at"]

_NTP_UNIX_OFFSET = 2_208_988_800
# prft v1: size, type, version+flags, reference_track_ID, ntp_timestamp, media_time
_PRFT = struct.Struct(">I4sIIQQ")


def namespace_of(text: str) -> tuple[bytes, ...]:
    return tuple(part.encode() for part in text.split("/"))


def _ntp(unix: float) -> int:
    seconds = int(unix)
    return ((seconds + _NTP_UNIX_OFFSET) << 32) | int((unix - seconds) * 2**32)


def sent_at(payload: bytes) -> float | None:
    """The wall-clock send time of a stamped object (``None`` if it carries no leading prft)."""
    if len(payload) < _PRFT.size or payload[4:8] != b"prft":
        return None
    ntp = int.from_bytes(payload[16:24], "big")
    return (ntp >> 32) - _NTP_UNIX_OFFSET + (ntp & 0xFFFFFFFF) / 2**32


@dataclass(frozen=True, slots=True)
class Clip:
    """A looping one-track CMAF clip: ``per_group`` frames per group, keyframes at group starts."""

    init: InitSegment
    fragments: tuple[Fragment, ...]
    fps: float
    per_group: int

    @property
    def bitrate(self) -> float:
        """Payload bits per second as published (frames plus the 32-byte prft)."""
        size = sum(len(f.data) + _PRFT.size for f in self.fragments)
        return size * 8 * self.fps / len(self.fragments)

    @property
    def group_seconds(self) -> float:
        return self.per_group / self.fps

    def catalog(self) -> bytes:
        track = CatalogTrack.from_init(
            "video", self.init, bitrate=round(self.bitrate), framerate=self.fps
        )
        return Catalog.build([track], generated_at=int(time.time() * 1000)).to_json()

    def payload(self, seq: int, now: float | None = None) -> bytes:
        """Object ``seq`` of the endless stream, stamped with ``now`` (default: the wall clock)."""
        loops, index = divmod(seq, len(self.fragments))
        span = self.fragments[-1].end_time - self.fragments[0].base_media_decode_time
        fragment = shift_fragment(self.fragments[index], loops * span)
        prft = _PRFT.pack(
            _PRFT.size,
            b"prft",
            1 << 24,
            fragment.track_id,
            _ntp(time.time() if now is None else now),
            fragment.base_media_decode_time,
        )
        return prft + fragment.data


def make_clip(
    directory: Path,
    *,
    bitrate: float = 2.5e6,
    fps: float = 30.0,
    group_seconds: float = 2.0,
    groups: int = 2,
    size: str = "640x360",
) -> Clip:
    """Encode (once per parameter set, cached in ``directory``) and load a clip."""
    from media.ffmpeg import ffmpeg_exe

    per_group = max(1, round(group_seconds * fps))
    kbit = max(50, int(bitrate / 1000))
    tag = hashlib.sha256(f"{kbit}-{fps}-{per_group}-{groups}-{size}".encode()).hexdigest()[:12]
    path = directory / f"clip-{tag}.mp4"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        subprocess.run(
            [
                ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}",
                "-frames:v", str(per_group * groups),
                "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
                "-pix_fmt", "yuv420p", "-b:v", f"{kbit}k", "-minrate", f"{kbit}k",
                "-maxrate", f"{kbit}k", "-bufsize", f"{max(kbit // 8, 20)}k",
                "-x264-params", "nal-hrd=cbr:filler=1",
                "-g", str(per_group), "-keyint_min", str(per_group), "-sc_threshold", "0",
                "-f", "mp4", "-movflags", "empty_moov+default_base_moof+frag_every_frame+cmaf",
                str(partial),
            ],
            check=True,
            timeout=120,
        )  # fmt: skip
        partial.rename(path)
    items = split_fmp4(path.read_bytes())
    init = items[0]
    fragments = tuple(i for i in items if isinstance(i, Fragment))
    if not isinstance(init, InitSegment) or len(fragments) != per_group * groups:
        raise RuntimeError(f"{path}: expected an init segment and {per_group * groups} frames")
    keyframes = [i for i, f in enumerate(fragments) if f.keyframe]
    if keyframes != list(range(0, len(fragments), per_group)):
        raise RuntimeError(f"{path}: keyframes at {keyframes}, not every {per_group} frames")
    return Clip(init, fragments, fps, per_group)


# --- publisher role ------------------------------------------------------------------


async def _publisher(args: argparse.Namespace) -> int:
    from moqt.aio import SessionOptions, connect
    from moqt.events import PublishAccepted

    clip = make_clip(
        Path(args.clip_dir),
        bitrate=args.bitrate,
        fps=args.fps,
        group_seconds=args.group_seconds,
    )
    namespace = namespace_of(args.namespace)
    go = asyncio.Event()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, go.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if not args.wait_go:
        go.set()
    options = SessionOptions(auth_token=args.key.encode())
    async with connect(args.url, verify=False, options=options) as conn:
        session = conn.session
        rids = {}
        for name in (b".catalog", b"video"):
            rid = session.publish(namespace, name)
            answer = await conn.wait_response(rid)
            if not isinstance(answer, PublishAccepted):
                print(f"error publish {name.decode()} refused: {answer}", flush=True)
                return 1
            rids[name] = rid
        handle = session.open_subgroup(rids[b".catalog"], 0, 0)
        session.write_object(handle, 0, clip.catalog())
        session.end_subgroup(handle)
        interval = 1.0 / clip.fps
        prime = args.prime_groups * clip.per_group
        measured = int(args.duration * clip.fps) if args.duration > 0 else None
        seq, sent, bytes_sent = 0, 0, 0
        video: Any = None
        start = time.monotonic()
        while not stop.is_set() and not conn.is_closed:
            if seq == prime:
                t0 = time.time() - (time.monotonic() - start)  # wall-clock due time of object 0
                primed = {"primed": seq, "group": seq // clip.per_group, "t0": t0}
                print(json.dumps(primed), flush=True)
                if not go.is_set():
                    await asyncio.wait(
                        [asyncio.ensure_future(go.wait()), asyncio.ensure_future(stop.wait())],
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    start = time.monotonic() - seq * interval
                if stop.is_set():
                    break
            if measured is not None and seq >= prime + measured:
                break
            delay = start + seq * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            group, obj = divmod(seq, clip.per_group)
            if obj == 0:
                if video is not None:
                    session.end_subgroup(video)
                video = session.open_subgroup(rids[b"video"], group, 0, priority=128)
            payload = clip.payload(seq)
            session.write_object(video, obj, payload)
            if seq >= prime:
                sent += 1
                bytes_sent += len(payload)
            seq += 1
        if video is not None and not conn.is_closed:
            session.end_subgroup(video)
        report = {"objects": sent, "bytes": bytes_sent, "first_group": args.prime_groups}
        print(f"sent {json.dumps(report)}", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.linger)
    return 0


# --- viewers role --------------------------------------------------------------------


def _sink_data_streams(conn: Any, buckets: dict[int, int]) -> None:
    """Count what arrives on unidirectional (data) streams per 10 ms instead of handing it
    to the session: the viewer's Python then costs little more than its QUIC stack."""
    feed = conn._feed_stream

    def sink(stream_id: int, data: bytes, end_stream: bool) -> None:
        if stream_id & 0x2:
            bucket = int(time.time() * 100)
            buckets[bucket] = buckets.get(bucket, 0) + len(data)
        else:
            feed(stream_id, data, end_stream)

    conn._feed_stream = sink


@dataclass(slots=True)
class _Viewer:
    index: int
    jti: str
    objects: list[tuple[int, int, float, float]]  # group, object, received, sent
    seen: set[tuple[int, int]]
    answered_at: float = 0.0
    subscribed_at: float = 0.0
    rejected: str | None = None
    largest: tuple[int, int] | None = None  # SUBSCRIBE_OK's Largest Location
    fetch: str = "none"  # joining FETCH: none | sent | accepted | rejected: <reason>
    closed_at: float | None = None
    closed_reason: str | None = None
    closed_code: int | None = None
    # --sink: bytes of data streams received, per 10 ms bucket (int(time * 100))
    sink: dict[int, int] = field(default_factory=dict)
    counted: int = 0
    # live subgroup streams by QUIC stream id: [group, "open" | "fin" | "reset"]
    streams: dict[int, list[Any]] = field(default_factory=dict)

    def on_stream(self, event: object) -> None:
        """Note how a live subgroup stream stands (opened, ended with FIN, reset)."""
        if isinstance(event, SubgroupStreamOpened):
            self.streams[event.stream_id] = [event.group_id, "open"]
        elif isinstance(event, SubgroupStreamEnded | SubgroupStreamReset):
            outcome = "fin" if isinstance(event, SubgroupStreamEnded) else "reset"
            self.streams[event.stream_id] = [event.group_id, outcome]


async def _viewers(args: argparse.Namespace) -> int:
    from moqt.aio import ConnectionClosed, SessionOptions, connect
    from moqt.events import (
        FetchAccepted,
        ObjectReceived,
        RequestRejected,
        SessionClosed,
        SubscribeAccepted,
    )
    from moqt.types import SubscriptionFilter

    from ._procs import rss_bytes

    tokens: list[dict[str, Any]] = args.token_list
    namespace = namespace_of(args.namespace)
    viewers = [_Viewer(i, t["jti"], [], set()) for i, t in enumerate(tokens)]
    complete = asyncio.Event()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    done_count = [0]

    def on_event(viewer: _Viewer, event: object) -> None:
        if isinstance(event, ObjectReceived) and event.payload:
            key = (event.group_id, event.object_id)
            if key in viewer.seen:
                return
            viewer.seen.add(key)
            now = time.time()
            viewer.objects.append((key[0], key[1], now, sent_at(event.payload) or 0.0))
            if event.group_id >= args.from_group:
                viewer.counted += 1
                if viewer.counted == args.expect:
                    done_count[0] += 1
                    if done_count[0] == len(viewers):
                        complete.set()
        elif isinstance(event, FetchAccepted):
            viewer.fetch = "accepted"
        elif isinstance(event, RequestRejected) and viewer.fetch == "sent":
            viewer.fetch = f"rejected: {event.reason}"
        elif isinstance(event, SessionClosed) and viewer.closed_at is None:
            viewer.closed_at = time.time()
            viewer.closed_reason = event.reason
            viewer.closed_code = event.code
        else:
            viewer.on_stream(event)

    async def watch(viewer: _Viewer, token: str, stack: contextlib.AsyncExitStack) -> None:
        options = SessionOptions(auth_token=token.encode())
        try:
            conn = await stack.enter_async_context(
                connect(args.url, verify=False, options=options, stack=args.stack)
            )
            viewer.subscribed_at = time.time()
            rid = conn.session.subscribe(
                namespace, b"video", filter=SubscriptionFilter.largest_object()
            )
            answer = await conn.wait_response(rid)
            viewer.answered_at = time.time()
            if isinstance(answer, RequestRejected):
                viewer.rejected = answer.reason
                return
            conn.set_event_handler(lambda _c, ev: on_event(viewer, ev))
            if args.sink:
                _sink_data_streams(conn, viewer.sink)
            if isinstance(answer, SubscribeAccepted) and answer.largest is not None:
                viewer.largest = (answer.largest.group, answer.largest.object)
                if args.join:
                    viewer.fetch = "sent"
                    conn.session.joining_fetch(rid, 0)
        except ConnectionClosed as exc:
            viewer.rejected = exc.reason or "closed"
            viewer.closed_at = time.time()
            viewer.closed_reason = exc.reason
            viewer.closed_code = exc.code

    async with contextlib.AsyncExitStack() as stack:
        await asyncio.gather(
            *(watch(v, t["token"], stack) for v, t in zip(viewers, tokens, strict=True))
        )
        for viewer in viewers:  # a rejected viewer never completes
            if viewer.rejected is not None:
                done_count[0] += 1
        if done_count[0] == len(viewers):
            complete.set()
        print(f"ready {json.dumps({'rss': rss_bytes(os.getpid())})}", flush=True)
        waiters = [asyncio.ensure_future(e.wait()) for e in (complete, stop)]
        await asyncio.wait(waiters, timeout=args.timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        if args.hold > 0 and not stop.is_set():
            # stay connected (revocations are measured now) until SIGTERM or the deadline
            print(f"complete {json.dumps({'complete': done_count[0]})}", flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.hold)
        report = {
            "rss": rss_bytes(os.getpid()),
            "stopped_at": time.time(),
            "viewers": [
                {
                    "jti": v.jti,
                    "rejected": v.rejected,
                    "subscribed_at": v.subscribed_at,
                    "answered_at": v.answered_at,
                    "largest": v.largest,
                    "fetch": v.fetch,
                    "closed_at": v.closed_at,
                    "closed_reason": v.closed_reason,
                    "closed_code": v.closed_code,
                    "counted": v.counted,
                    "objects": v.objects,
                    "streams": list(v.streams.values()),
                    "sink": sorted(v.sink.items()),
                }
                for v in viewers
            ],
        }
        await asyncio.to_thread(Path(args.report).write_text, json.dumps(report))
        print("done", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench._live", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="role", required=True)
    pub = sub.add_parser("publisher")
    pub.add_argument("--url", required=True)
    pub.add_argument("--namespace", required=True)
    pub.add_argument("--key", default="sk_bench", help="stream key (AUTHORIZATION TOKEN)")
    pub.add_argument("--clip-dir", required=True)
    pub.add_argument("--bitrate", type=float, default=2.5e6)
    pub.add_argument("--fps", type=float, default=30.0)
    pub.add_argument("--group-seconds", type=float, default=2.0)
    pub.add_argument("--prime-groups", type=int, default=1)
    pub.add_argument("--wait-go", action="store_true", help="pause after priming until SIGUSR1")
    pub.add_argument(
        "--duration", type=float, default=0.0, help="seconds after priming; 0: forever"
    )
    pub.add_argument("--linger", type=float, default=2.0)
    view = sub.add_parser("viewers")
    view.add_argument("--url", required=True)
    view.add_argument(
        "--sink",
        action="store_true",
        help="count the bytes of data streams instead of parsing objects (a cheap load "
        "generator for throughput runs: no objects, latency or completion are reported)",
    )
    view.add_argument(
        "--stack",
        choices=QUIC_STACKS,
        default="aioquic",
        help="the viewers' QUIC stack",
    )
    view.add_argument("--namespace", required=True)
    view.add_argument("--tokens", required=True, help='JSON [{"token": ..., "jti": ...}, ...]')
    view.add_argument("--report", required=True)
    view.add_argument("--join", action="store_true", help="joining FETCH of the current group")
    view.add_argument("--from-group", type=int, default=0, help="count objects from this group")
    view.add_argument("--expect", type=int, default=0, help="objects each (0: until timeout)")
    view.add_argument("--timeout", type=float, default=60.0)
    view.add_argument(
        "--hold",
        type=float,
        default=0.0,
        help="print 'complete', then stay connected until SIGTERM, at most this many seconds",
    )
    args = parser.parse_args(argv)
    import logging

    import structlog

    # stdout carries the protocol lines only; library logs (warnings and up) go to stderr
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    if args.role == "publisher":
        return asyncio.run(_publisher(args))
    args.token_list = json.loads(Path(args.tokens).read_text())
    if args.expect <= 0:
        args.expect = -1  # never complete: run until --timeout or SIGTERM
    return asyncio.run(_viewers(args))


if __name__ == "__main__":
    sys.exit(main())
