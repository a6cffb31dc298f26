"""Helpers for the data-plane SDK tests: an in-process relay on a free port, ffmpeg checks."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from clutchcall.streams import Chunk
from clutchcall.streams._broadcast import BroadcastSender
from media import AudioSpec, CatalogUpdate, LadderSpec, VideoRung
from media.ffmpeg import TestPatternSource, Transcoder, ffmpeg_exe
from mesh.relay import RelayConfig
from mesh.relay._node import RelayNode
from moqt.aio import connect, write_self_signed
from moqt.events import PublishNamespaceAccepted

NAMESPACE = "stream/org_test/lv_test"


@dataclass(slots=True)
class Relay:
    node: RelayNode
    cert: Path

    def url(self, scheme: str = "moqt") -> str:
        return f"{scheme}://127.0.0.1:{self.node.address[1]}"

    def playback_url(self, scheme: str = "moqt", namespace: str = NAMESPACE) -> str:
        return f"{self.url(scheme)}/{namespace}?token=t0ken"


@asynccontextmanager
async def running_relay(tmp_path: Path) -> AsyncIterator[Relay]:
    node = RelayNode(RelayConfig())
    cert, key = write_self_signed(tmp_path, ["localhost", "127.0.0.1"])
    await node.start("127.0.0.1", 0, cert, key)
    try:
        yield Relay(node, cert)
    finally:
        await node.stop()


@dataclass(slots=True)
class Recorder:
    """Collects what a viewer delivers, the way the seed's recipe writes it."""

    chunks: list[Chunk] = field(default_factory=list)
    closes: list[tuple[str, str]] = field(default_factory=list)
    #: Set at the first media (not init) chunk: wait on it instead of sleeping.
    media: asyncio.Event = field(default_factory=asyncio.Event)

    def on_chunk(self, is_init: bool, chunk: Chunk) -> None:
        assert is_init == chunk.is_init
        assert not self.closes, "a chunk after on_close"
        self.chunks.append(chunk)
        if not is_init:
            self.media.set()

    def on_close(self, reason: str, detail: str) -> None:
        self.closes.append((reason, detail))

    def write(self, path: Path) -> Path:
        path.write_bytes(b"".join(c.data for c in self.chunks))
        return path


@dataclass(frozen=True, slots=True)
class Decoded:
    frames: int
    seconds: float
    errors: str


def decode(path: Path) -> Decoded:
    """Decode every video frame of ``path`` with ffmpeg (as a player would)."""
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-stats", "-i", str(path),
         "-map", "0:v:0", "-f", "null", "-"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    frames = [int(m) for m in re.findall(r"frame=\s*(\d+)", result.stderr)]
    times = re.findall(r"time=(\d+):(\d+):([\d.]+)", result.stderr)
    seconds = 0.0
    if times:
        h, m, s = times[-1]
        seconds = int(h) * 3600 + int(m) * 60 + float(s)
    errors = "\n".join(
        line for line in result.stderr.splitlines() if "frame=" not in line and line.strip()
    )
    return Decoded(frames[-1] if frames else 0, seconds, errors)


async def publish_ladder(url: str, cert: Path, stop: asyncio.Event, *, audio: bool = True) -> None:
    """Publish a two-rendition ladder (360p + 180p, 1 s groups) of a live test pattern,
    the way an origin's RTMP transcode does: one ffmpeg, shared group ids, one catalog."""
    source = TestPatternSource(width=640, height=360, fps=30, realtime=True, has_audio=audio)
    ladder = LadderSpec(
        video=(VideoRung("360p", 360, 900_000), VideoRung("180p", 180, 300_000)),
        audio=AudioSpec() if audio else None,
        group_duration=1.0,
        chunk_duration=0.5,
    )
    ns = tuple(NAMESPACE.encode().split(b"/"))
    async with connect(url, cafile=str(cert)) as conn, Transcoder(source, ladder) as tc:
        sender = BroadcastSender(conn.session, ns)
        conn.set_event_handler(lambda _c, event: sender.on_event(event))
        await conn.request(conn.session.publish_namespace(ns), PublishNamespaceAccepted)
        packager = tc.packager()
        for plan in tc.track_plans():
            sender.add_track(plan.name, plan.priority if plan.priority is not None else 2)
        async for rendition, item in tc:
            if stop.is_set():
                break
            for out in packager.push(rendition, item):
                if isinstance(out, CatalogUpdate):
                    sender.send_catalog(out.catalog)
                else:
                    obj = out.object
                    sender.send_object(out.track, obj.group_id, obj.object_id, obj.payload)
        sender.finish(packager.end())
        await asyncio.sleep(0.3)
