"""Helpers of the upload tests: an app on a real database, a packaging queue that records."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import imageio_ffmpeg

from tests.control.conftest import Api, open_api
from vod.packaging import PackagingJob

SEED = {"tus-resumable": "2.0.0"}
OCTETS = {"content-type": "application/offset+octet-stream"}


class RecordingQueue:
    """Stands where the packaging queue goes and records what is submitted to it."""

    def __init__(self) -> None:
        self.jobs: list[PackagingJob] = []
        self._submitted = asyncio.Event()

    async def submit(self, job: PackagingJob) -> None:
        self.jobs.append(job)
        self._submitted.set()

    async def resubmit(self, job: PackagingJob) -> bool:
        await self.submit(job)
        return True

    async def wait(self, within: float = 15.0) -> PackagingJob:
        await asyncio.wait_for(self._submitted.wait(), within)
        return self.jobs[-1]


@contextlib.asynccontextmanager
async def upload_api(
    tmp_path: Path, db_url: str | None = None, bus: Any = None, **settings: Any
) -> AsyncIterator[tuple[Api, RecordingQueue]]:
    from mesh.bus import MemoryBus

    db = db_url or f"sqlite:///{tmp_path / 'control.db'}"
    settings.setdefault("data_dir", str(tmp_path / "data"))
    settings.setdefault("upload_idle_seconds", 0.5)
    async with open_api(db, bus if bus is not None else MemoryBus(), **settings) as api:
        queue = RecordingQueue()
        api.service.packaging = queue
        try:
            yield api, queue
        finally:
            await api.app.state.uploads.close()


async def new_upload(api: Api, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "clip.mp4")
    r = await api.client.post("/v1/assets/uploads", json=body, headers=api.auth())
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


async def asset(api: Api, asset_id: str) -> dict[str, Any]:
    r = await api.client.get(f"/v1/assets/{asset_id}", headers=api.auth())
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def make_clip(path: Path, seconds: float = 2.0) -> bytes:
    """A small H.264 + AAC MP4 made by ffmpeg (moov at the end, as ffmpeg writes it)."""
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
            "-y", "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
            "-shortest", str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path.read_bytes()
