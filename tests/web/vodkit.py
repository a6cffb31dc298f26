"""A real packaged on-demand asset for browser and node tests (vod.packaging on an ffmpeg clip)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

from tests.vod._clips import make_clip
from vod.packaging import PackagingJob, package_asset

__all__ = ["package_clip"]


def package_clip(
    workdir: Path, playback_id: str = "pb_test", *, seconds: float = 8.0, width: int = 1280,
    height: int = 720,
) -> Path:  # fmt: skip
    """``workdir/<playback_id>``: catalog.json, <track>/init.mp4, <track>/<group>.m4s."""
    workdir.mkdir(parents=True, exist_ok=True)
    clip = make_clip(workdir / "clip.mp4", seconds=seconds, width=width, height=height)
    out = workdir / playback_id
    job = PackagingJob("as_test", playback_id, f"stream/org_abc/{playback_id}", clip, out, 600)
    # A thread of its own: Playwright's sync API may own this thread's event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, package_asset(job)).result()
    return out
