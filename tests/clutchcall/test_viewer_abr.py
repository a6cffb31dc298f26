"""Rendition switches: at a group boundary, a new init chunk first, the timeline continuous."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from clutchcall.streams import AsyncBroadcastViewer, BroadcastViewer, Chunk
from media import split_fmp4
from media.fmp4 import Fragment, InitSegment
from tests.clutchcall.dataplane import Recorder, decode, publish_ladder, running_relay

pytestmark = pytest.mark.timeout(90)


class Progress(Recorder):
    """A Recorder that wakes waiters on every chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def on_chunk(self, is_init: bool, chunk: Chunk) -> None:
        super().on_chunk(is_init, chunk)
        self.changed.set()

    async def wait_for(self, predicate: Callable[[], bool], within: float) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


async def test_switching_rendition_emits_a_new_init_then_continues_the_timeline(
    tmp_path: Path,
) -> None:
    async with running_relay(tmp_path) as relay:
        stop = asyncio.Event()
        publisher = asyncio.ensure_future(publish_ladder(relay.url(), relay.cert, stop))
        rec = Progress()
        viewer = await AsyncBroadcastViewer.open(
            relay.playback_url(), on_chunk=rec.on_chunk, on_close=rec.on_close,
            cafile=str(relay.cert),
        )  # fmt: skip
        try:
            videos = lambda: [c for c in rec.chunks if c.kind == "video"]  # noqa: E731
            await rec.wait_for(lambda: len(videos()) >= 3, 30)
            assert viewer.rendition == "360p"  # ABR starts at the highest
            assert viewer.renditions == ["360p", "180p"]
            viewer.select_rendition("180p")
            await rec.wait_for(lambda: any(v.rendition == "180p" for v in videos()), 15)
            await rec.wait_for(lambda: sum(v.rendition == "180p" for v in videos()) >= 3, 15)
            viewer.select_rendition("360p")  # and back up
            await rec.wait_for(lambda: videos()[-1].rendition == "360p", 15)
            await viewer.close()
        finally:
            stop.set()
            await asyncio.wait_for(publisher, 15)
    inits = [i for i, c in enumerate(rec.chunks) if c.is_init]
    assert len(inits) == 3 and inits[0] == 0
    assert [rec.chunks[i].rendition for i in inits] == ["360p", "180p", "360p"]
    # Each init comes right before the first chunk of its rendition, which opens a group.
    for i in inits:
        following = next(c for c in rec.chunks[i + 1 :] if c.kind == "video")
        assert following.rendition == rec.chunks[i].rendition and following.object_id == 0
    segments = [rec.chunks[a:b] for a, b in zip(inits, [*inits[1:], len(rec.chunks)], strict=True)]
    heights = []
    previous_end: int | None = None
    for part in segments:
        items = split_fmp4(b"".join(c.data for c in part))
        header = items[0]
        assert isinstance(header, InitSegment)
        heights.append(next(t.height for t in header.tracks if t.role == "video"))
        video = [f for f in items if isinstance(f, Fragment) and f.track_id == 1]
        if previous_end is not None:  # the new rendition picks up where the old one stopped
            assert video[0].base_media_decode_time == previous_end
        previous_end = video[-1].end_time
        path = tmp_path / f"part{len(heights)}.mp4"
        path.write_bytes(b"".join(c.data for c in part))
        decoded = decode(path)
        assert decoded.errors == "" and decoded.frames == len(video) * 15
    assert heights == [360, 180, 360]
    groups = [c.group_id or 0 for c in rec.chunks if c.kind == "video"]
    assert groups == sorted(groups)


def test_a_viewer_that_cannot_keep_up_steps_down_by_itself(tmp_path: Path) -> None:
    """ABR with nothing pinned: a consumer slower than the top rendition's bitrate
    (here: ``on_chunk`` writes at ~70 kB/s) makes the viewer fall behind real time;
    it moves to the rendition it can sustain, announcing it with a new init chunk."""
    ready = threading.Event()
    stop = threading.Event()
    state: dict[str, str] = {}

    def serve() -> None:
        async def main() -> None:
            async with running_relay(tmp_path) as relay:
                done = asyncio.Event()
                publisher = asyncio.ensure_future(
                    publish_ladder(relay.url(), relay.cert, done, audio=False)
                )
                state["url"], state["cert"] = relay.playback_url(), str(relay.cert)
                ready.set()
                await asyncio.to_thread(stop.wait)
                done.set()
                await asyncio.wait_for(publisher, 15)

        asyncio.run(main())

    thread = threading.Thread(target=serve)
    thread.start()
    chunks: list[Chunk] = []
    switched = threading.Event()

    def slow_consumer(is_init: bool, chunk: Chunk) -> None:
        chunks.append(chunk)
        if is_init and chunk.rendition == "180p":
            switched.set()
        time.sleep(len(chunk.data) / 70_000)

    try:
        assert ready.wait(30)
        viewer = BroadcastViewer.open(state["url"], on_chunk=slow_consumer, cafile=state["cert"])
        try:
            assert switched.wait(40), [(c.rendition, c.group_id) for c in chunks]
        finally:
            viewer.close()
    finally:
        stop.set()
        thread.join(30)
    inits = [c.rendition for c in chunks if c.is_init]
    assert inits[:2] == ["360p", "180p"]  # the highest first, then the one that keeps up
    first_low = next(i for i, c in enumerate(chunks) if c.is_init and c.rendition == "180p")
    before = [c.group_id or 0 for c in chunks[:first_low] if not c.is_init]
    after = chunks[first_low + 1]
    assert after.rendition == "180p" and after.object_id == 0
    assert (after.group_id or 0) > max(before)
