"""Fixtures for the RTMP ingest tests: the ffmpeg binary, a recording sink, a running server."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import pytest

from origin.rtmp import (
    Admission,
    MediaTag,
    PublishEnd,
    PublishInfo,
    RtmpServer,
    RtmpServerSettings,
    SinkFactory,
)

INPUT_ID = "lv_test1"
STREAM_KEY = "sk_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
ORG_ID = "org_test"


@pytest.fixture(scope="session")
def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


@pytest.fixture(scope="session")
def sample_flv(ffmpeg_exe: str, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 2 s H.264 + AAC FLV made by ffmpeg (640x360, 30 fps, keyframe every second)."""
    out = tmp_path_factory.mktemp("flv") / "sample.flv"
    subprocess.run(
        [
            ffmpeg_exe,
            "-hide_banner",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            "-f",
            "flv",
            str(out),
        ],
        check=True,
        timeout=60,
    )
    return out.read_bytes()


class RecordingSink:
    """Keeps everything a publish delivered; ``ended`` fires on the end notice."""

    def __init__(self, info: PublishInfo) -> None:
        self.info = info
        self.metadata: list[dict[str, Any]] = []
        self.tags: list[MediaTag] = []
        self.ends: list[PublishEnd] = []
        self.ended = asyncio.Event()

    async def on_metadata(self, metadata: dict[str, Any]) -> None:
        self.metadata.append(metadata)

    async def on_media(self, tag: MediaTag) -> None:
        self.tags.append(tag)

    async def on_end(self, end: PublishEnd) -> None:
        self.ends.append(end)
        self.ended.set()

    async def wait_ended(self, within: float = 5.0) -> PublishEnd:
        async with asyncio.timeout(within):
            await self.ended.wait()
        return self.ends[-1]


@dataclass
class Harness:
    server: RtmpServer
    keys: dict[str, str]
    sinks: list[RecordingSink] = field(default_factory=list)
    auth_calls: list[tuple[str, str]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.port

    new_sink: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_sink(self, index: int = 0, within: float = 5.0) -> RecordingSink:
        async with asyncio.timeout(within), self.new_sink:
            await self.new_sink.wait_for(lambda: len(self.sinks) > index)
        return self.sinks[index]


def handler_tasks() -> list[asyncio.Task[Any]]:
    """Connection handler tasks of any RtmpServer still alive in this loop."""
    return [
        t
        for t in asyncio.all_tasks()
        if not t.done() and getattr(t.get_coro(), "__qualname__", "").startswith("RtmpServer.")
    ]


@asynccontextmanager
async def running_server(
    settings: RtmpServerSettings | None = None,
    keys: dict[str, str] | None = None,
    sink_factory: SinkFactory | None = None,
) -> AsyncIterator[Harness]:
    """A started server; sinks are :class:`RecordingSink` unless ``sink_factory`` is given."""
    keys = {INPUT_ID: STREAM_KEY} if keys is None else keys
    harness: Harness

    async def authorize(input_id: str, key: str) -> Admission:
        harness.auth_calls.append((input_id, key))
        if keys.get(input_id) != key:
            return Admission.deny("invalid stream key")
        return Admission.allow(ORG_ID, f"stream/{ORG_ID}/{input_id}")

    async def recording_factory(info: PublishInfo) -> RecordingSink:
        sink = RecordingSink(info)
        async with harness.new_sink:
            harness.sinks.append(sink)
            harness.new_sink.notify_all()
        return sink

    server = RtmpServer(authorize, sink_factory or recording_factory, settings)
    harness = Harness(server, keys)
    await server.start("127.0.0.1", 0)
    try:
        yield harness
    finally:
        await server.close()
        assert handler_tasks() == [], "RTMP handler tasks leaked"
        assert server.statistics().connections_active == 0


@pytest.fixture
async def rtmp() -> AsyncIterator[Harness]:
    async with running_server() as harness:
        yield harness


@pytest.fixture
def make_rtmp() -> Callable[..., Any]:
    return running_server


def ffprobe_like(ffmpeg_exe: str, path: Path) -> tuple[int, float, str]:
    """Decode ``path`` fully with ffmpeg: (video frames decoded, last video time s, stderr)."""
    proc = subprocess.run(
        [
            ffmpeg_exe,
            "-hide_banner",
            "-v",
            "error",
            "-i",
            str(path),
            "-map",
            "0:v:0",
            "-f",
            "null",
            "-progress",
            "pipe:1",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    frames, out_time = 0, 0.0
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        if key == "frame":
            frames = int(value)
        elif key == "out_time_us" and value.strip().lstrip("-").isdigit():
            out_time = int(value) / 1e6
    return frames, out_time, proc.stderr
