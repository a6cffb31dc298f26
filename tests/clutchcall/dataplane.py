"""Helpers for the data-plane SDK tests: an in-process relay on a free port, ffmpeg checks."""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from clutchcall.streams import Chunk
from media.ffmpeg import ffmpeg_exe
from mesh.relay import RelayConfig
from mesh.relay._node import RelayNode
from moqt.aio import write_self_signed

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

    def on_chunk(self, is_init: bool, chunk: Chunk) -> None:
        assert is_init == chunk.is_init
        assert not self.closes, "a chunk after on_close"
        self.chunks.append(chunk)

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
