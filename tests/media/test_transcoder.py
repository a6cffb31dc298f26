"""Real ffmpeg transcodes: the ladder, aligned groups, decodable output, pipes, stop, failures."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import pytest

from media.catalog import Catalog
from media.errors import FfmpegError
from media.ffmpeg import (
    FileSource,
    PipeSource,
    TestPatternSource,
    Transcoder,
    encoder_command,
    ffmpeg_exe,
    probe,
    test_pattern_transcoder,
)
from media.fmp4 import Fmp4Splitter, Fragment, InitSegment
from media.grouping import GroupAssembler, MediaObject
from media.ladder import AudioSpec, LadderSpec, VideoRung

from .conftest import ffmpeg

Collected = dict[str, list[InitSegment | Fragment]]


async def collect(tc: Transcoder) -> Collected:
    out: Collected = {}
    async for name, item in tc:
        out.setdefault(name, []).append(item)
    return out


def decode(path: Path) -> tuple[int, float]:
    """Decode a whole file with ffmpeg, no error allowed: (video frames, media seconds)."""
    run = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-", "-progress", "pipe:1"],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    assert run.stderr == b"", run.stderr
    frames = re.findall(rb"^frame=(\d+)", run.stdout, re.M)
    seconds = re.findall(rb"^out_time_us=(\d+)", run.stdout, re.M)
    return (int(frames[-1]) if frames else 0), int(seconds[-1]) / 1e6


def assert_reaped(pid: int | None) -> None:
    assert pid is not None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped: no zombie left behind


async def test_ladder_720p_source(tmp_path: Path) -> None:
    """6 s at 1280x720: 720p + 360p (no 1080p upscale) + audio, aligned 2 s groups, decodable."""
    tc = Transcoder(
        TestPatternSource(width=1280, height=720, duration=6, realtime=False), LadderSpec()
    )
    async with tc:
        items = await collect(tc)
        catalog = tc.catalog(namespace="stream/org_1/lv_1", generated_at=1)
    assert tc.result is not None and tc.result.returncode == 0 and not tc.result.stopped
    assert_reaped(tc.pid)
    assert set(items) == {"720p", "360p", "audio"}

    inits = {name: seq[0] for name, seq in items.items()}
    assert all(isinstance(i, InitSegment) for i in inits.values())
    assert inits["720p"].track.codec == "avc1.64001f"  # High@3.1
    assert inits["360p"].track.codec == "avc1.64001e"  # High@3.0
    assert (inits["360p"].track.width, inits["360p"].track.height) == (640, 360)
    assert inits["audio"].track.codec == "mp4a.40.2"

    groups: dict[str, list[MediaObject]] = {}
    for name, seq in items.items():
        assembler = GroupAssembler(group_duration=2.0)
        groups[name] = [
            o for o in (assembler.push(f) for f in seq[1:] if isinstance(f, Fragment)) if o
        ]
        assert assembler.statistics().dropped_before_keyframe == 0
    for name in ("720p", "360p"):
        starts = {o.group_id: o.fragment.start_seconds for o in groups[name] if o.starts_group}
        assert starts == {0: 0.0, 1: 2.0, 2: 4.0}
        assert all(o.keyframe == o.starts_group for o in groups[name])  # one GOP per group
        for gid in starts:  # every group is a 2 s GOP of 500 ms chunks
            durations = [o.fragment.duration_seconds for o in groups[name] if o.group_id == gid]
            assert sum(durations) == pytest.approx(2.0) and max(durations) <= 0.5 + 1e-9
    audio_starts = {o.group_id: o.fragment.start_seconds for o in groups["audio"] if o.starts_group}
    assert set(audio_starts) == {0, 1, 2}
    assert all(abs(audio_starts[g] - 2.0 * g) < 0.1 for g in audio_starts)

    assert catalog is not None
    parsed = Catalog.parse(catalog.to_json())
    assert [t.name for t in parsed.by_role("video")] == ["720p", "360p"]
    assert parsed.track("720p", "stream/org_1/lv_1").width == 1280  # type: ignore[union-attr]
    assert parsed.track("audio", "stream/org_1/lv_1").init_data == inits["audio"].data  # type: ignore[union-attr]

    for name, frames in (("360p", 180), ("720p", 180), ("audio", 0)):
        path = tmp_path / f"{name}.mp4"
        path.write_bytes(b"".join(i.data for i in items[name]))
        decoded, seconds = await asyncio.to_thread(decode, path)
        assert decoded == frames and seconds == pytest.approx(6.0, abs=0.05)

    # A late joiner: the catalog's initData, then the objects of the current group onwards.
    late = [o.payload for o in groups["360p"] if o.group_id >= 1]
    path = tmp_path / "late.mp4"
    path.write_bytes(parsed.track("360p", "stream/org_1/lv_1").init_data + b"".join(late))  # type: ignore[operator, union-attr]
    decoded, _ = await asyncio.to_thread(decode, path)
    assert decoded == 120  # groups 1 and 2 decode on their own: no reference to group 0


async def test_flv_pipe_input(tmp_path: Path) -> None:
    """FLV bytes written to stdin in pieces (what the RTMP server does) come out as CMAF tracks."""
    flv = tmp_path / "in.flv"
    await asyncio.to_thread(
        ffmpeg,
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=3", "-f", "lavfi", "-i", "sine=duration=3",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac", "-f", "flv", str(flv),
    )  # fmt: skip
    data = flv.read_bytes()
    ladder = LadderSpec(
        video=(VideoRung("180p", 180, 300_000),), group_duration=1.0, chunk_duration=0.5
    )
    tc = Transcoder(PipeSource(width=320, height=180), ladder)

    async def feed() -> None:
        for pos in range(0, len(data), 7000):
            await tc.write(data[pos : pos + 7000])
        await tc.close_input()

    async with tc:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(feed())
            items = await collect(tc)
    assert tc.result is not None and tc.result.returncode == 0
    assert set(items) == {"180p", "audio"}
    video = [f for f in items["180p"] if isinstance(f, Fragment)]
    assert sum(f.sample_count for f in video) == 75
    assert [f.start_seconds for f in video if f.keyframe] == [0.0, 1.0, 2.0]


async def test_pipe_input_of_unknown_size_is_capped_by_expression() -> None:
    run = await asyncio.to_thread(
        subprocess.run,
        [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=256x144:rate=10:duration=1",
         "-c:v", "libx264", "-preset", "ultrafast", "-f", "flv", "-"],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    flv = run.stdout
    ladder = LadderSpec(
        video=(VideoRung("360p", 360, 300_000), VideoRung("72p", 72, 100_000)), audio=None
    )
    tc = Transcoder(PipeSource(has_audio=False), ladder)
    async with tc:
        await tc.write(flv)
        await tc.close_input()
        items = await collect(tc)
    heights = {
        name: seq[0].track.height for name, seq in items.items() if isinstance(seq[0], InitSegment)
    }
    assert heights == {"360p": 144, "72p": 72}  # 360p not upscaled past the 144-line source


async def test_stop_endless_live_source() -> None:
    tc = test_pattern_transcoder(width=320, height=180, duration=None, realtime=True)
    async with tc:
        fragments = 0
        async for name, item in tc:
            if name == "video" and isinstance(item, Fragment):
                fragments += 1
                if fragments == 2:
                    break
        result = await tc.stop()
        assert result.stopped and result.returncode in (0, 255)
        assert [x async for x in tc] == []  # iteration is over after stop
    assert_reaped(tc.pid)
    assert set(tc.init_segments) == {"video", "audio"}
    catalog = tc.catalog()
    assert catalog is not None and catalog.track("video") is not None


async def test_stalled_consumer_then_stop_does_not_hang() -> None:
    tc = Transcoder(TestPatternSource(width=160, height=90, realtime=False), LadderSpec.single(90, 100_000),
                    queue_size=2, stop_timeout=3)  # fmt: skip
    async with tc:
        await asyncio.sleep(1.0)  # ffmpeg fills the queue and the pipe, then blocks
        stats = tc.statistics()
        assert stats.queued == 2 and stats.running
        assert stats.cpu_seconds is not None and stats.cpu_seconds > 0
        result = await asyncio.wait_for(tc.stop(), 10)
    assert result.stopped
    assert_reaped(tc.pid)


async def test_garbage_input_raises_ffmpeg_error() -> None:
    tc = Transcoder(PipeSource(width=320, height=180), LadderSpec.single(180, 100_000))
    errors: list[FfmpegError] = []

    async def feed() -> None:
        try:
            await tc.write(b"this is not an flv stream" * 100)
            await tc.close_input()
        except FfmpegError:
            pass  # ffmpeg may exit before reading all of it

    async def consume() -> None:
        try:
            await collect(tc)
        except FfmpegError as exc:
            errors.append(exc)

    async with tc:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(feed())
            tg.create_task(consume())
    assert len(errors) == 1
    assert errors[0].returncode not in (None, 0)
    assert "Error opening input" in errors[0].stderr_tail
    assert_reaped(tc.pid)


async def test_file_source_is_probed(tmp_path: Path) -> None:
    src = tmp_path / "src.mp4"
    await asyncio.to_thread(
        ffmpeg,
        "-f", "lavfi", "-i", "testsrc2=size=480x270:rate=10:duration=1",
        "-c:v", "libx264", "-preset", "ultrafast", str(src),
    )  # fmt: skip
    info = await probe(str(src))
    assert (info.width, info.height, info.fps, info.has_video, info.has_audio) == (
        480,
        270,
        10.0,
        True,
        False,
    )
    tc = Transcoder(FileSource(str(src), has_audio=False), LadderSpec())
    async with tc:
        items = await collect(tc)
    assert [v.name for v in tc.plan.video] == ["270p"]
    init = items["270p"][0]
    assert isinstance(init, InitSegment) and (init.track.width, init.track.height) == (480, 270)
    with pytest.raises(FfmpegError):
        await probe(str(tmp_path / "missing.mp4"))


async def test_stop_after_natural_end_with_unread_items() -> None:
    tc = Transcoder(TestPatternSource(width=160, height=90, duration=1, realtime=False),
                    LadderSpec.single(90, 100_000), queue_size=1)  # fmt: skip
    await tc.start()
    await asyncio.sleep(1.0)  # ffmpeg ends; the runner waits for a consumer that never comes
    result = await asyncio.wait_for(tc.stop(), 10)
    assert result.returncode == 0
    assert_reaped(tc.pid)


async def test_cancelled_consumer_leaves_no_process() -> None:
    tc = test_pattern_transcoder(width=160, height=90, realtime=True)
    started = asyncio.Event()

    async def consume() -> None:
        async with tc:
            async for _ in tc:
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert tc.result is not None and tc.result.stopped
    assert_reaped(tc.pid)


async def test_stop_live_pipe_input_flushes(tmp_path: Path) -> None:
    flv = tmp_path / "live.flv"
    await asyncio.to_thread(
        ffmpeg,
        "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10:duration=4",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-an", "-f", "flv", str(flv),
    )  # fmt: skip
    data = flv.read_bytes()
    tc = Transcoder(
        PipeSource(width=160, height=90, has_audio=False), LadderSpec.single(90, 100_000)
    )
    async with tc:
        await tc.write(data[: len(data) // 2])  # half the stream, then the encoder goes away
        first = await anext(tc)
        assert first[0] == "90p" and isinstance(first[1], InitSegment)
        result = await tc.stop()
    assert result.stopped and result.returncode == 0  # stdin EOF: ffmpeg finished cleanly
    assert_reaped(tc.pid)


async def test_opus_audio_rendition(tmp_path: Path) -> None:
    ladder = LadderSpec(
        video=(VideoRung("90p", 90, 100_000),), audio=AudioSpec(codec="opus", bitrate=64_000)
    )
    tc = Transcoder(TestPatternSource(width=160, height=90, duration=2, realtime=False), ladder)
    async with tc:
        items = await collect(tc)
        catalog = tc.catalog()
    init = items["audio"][0]
    assert isinstance(init, InitSegment)
    assert (init.track.codec, init.track.sample_rate, init.track.channel_count) == (
        "opus",
        48000,
        2,
    )
    assert catalog is not None and catalog.track("audio").codec == "opus"  # type: ignore[union-attr]
    path = tmp_path / "opus.mp4"
    path.write_bytes(b"".join(i.data for i in items["audio"]))
    frames, seconds = await asyncio.to_thread(decode, path)
    assert frames == 0 and seconds == pytest.approx(2.0, abs=0.05)


def test_encoder_fmp4_on_stdout_splits_into_tracks() -> None:
    source = TestPatternSource(width=320, height=180, fps=25, duration=3, realtime=False)
    cmd = encoder_command(
        ffmpeg_exe(), source, "pipe:1", container="fmp4", video_bitrate=300_000, gop_seconds=1.0
    )
    splitter = Fmp4Splitter(split_tracks=True)
    items: list[InitSegment | Fragment] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(4096):
            items.extend(splitter.feed(chunk))
    assert proc.returncode == 0
    splitter.close()
    inits = [i for i in items if isinstance(i, InitSegment)]
    assert sorted(i.track.role for i in inits) == ["audio", "video"]
    video_id = next(i.track.track_id for i in inits if i.track.role == "video")
    video = [f for f in items if isinstance(f, Fragment) and f.track_id == video_id]
    assert [f.start_seconds for f in video if f.keyframe] == [0.0, 1.0, 2.0]
    assert sum(f.sample_count for f in video) == 75


async def test_encoder_flv_stream_through_the_ladder() -> None:
    """An encoder's FLV (what RTMP carries) piped live into the ladder transcoder."""
    source = TestPatternSource(width=320, height=180, fps=25, duration=2, realtime=False)
    cmd = encoder_command(ffmpeg_exe(), source, "pipe:1", video_bitrate=300_000)
    encoder = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
    ladder = LadderSpec(video=(VideoRung("180p", 180, 300_000), VideoRung("90p", 90, 100_000)))
    tc = Transcoder(PipeSource(width=320, height=180), ladder)

    async def relay() -> None:
        assert encoder.stdout is not None
        while chunk := await encoder.stdout.read(4096):
            await tc.write(chunk)
        await tc.close_input()
        assert await encoder.wait() == 0

    async with tc:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(relay())
            items = await collect(tc)
    assert set(items) == {"180p", "90p", "audio"}
    for name in ("180p", "90p"):
        frags = [f for f in items[name] if isinstance(f, Fragment)]
        assert sum(f.sample_count for f in frags) == 50
        assert [f.start_seconds for f in frags if f.keyframe] == [0.0]
