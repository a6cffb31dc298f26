"""Real ffmpeg (the imageio-ffmpeg binary) publishing to our RTMP server."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from origin.rtmp import EndReason, FlvMuxer, FlvSink, PublishEnd, PublishInfo, read_flv
from tests.origin.rtmp.conftest import (
    INPUT_ID,
    STREAM_KEY,
    Harness,
    ffprobe_like,
    running_server,
)

pytestmark = pytest.mark.timeout(60)

SECONDS = 3
FPS = 30


def publish_cmd(ffmpeg: str, url: str, *extra: str, seconds: int = SECONDS) -> list[str]:
    return [
        ffmpeg,
        "-hide_banner",
        "-nostats",
        "-v",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size=1280x720:rate={FPS}",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        str(seconds),
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        str(2 * FPS),
        "-keyint_min",
        str(2 * FPS),
        "-sc_threshold",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        *extra,
        "-f",
        "flv",
        url,
    ]


async def run(cmd: list[str], within: float = 40) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(within):
            _, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, err.decode(errors="replace")


async def test_ffmpeg_publishes_720p_h264_aac(
    rtmp: Harness, ffmpeg_exe: str, tmp_path: Path
) -> None:
    # ffmpeg splits this URL into app "live/<id>" and stream name "<key>".
    url = f"rtmp://127.0.0.1:{rtmp.port}/live/{INPUT_ID}/{STREAM_KEY}"
    code, err = await run(publish_cmd(ffmpeg_exe, url))
    assert code == 0, err
    sink = await rtmp.wait_sink()
    end = await sink.wait_ended()
    assert end.reason is EndReason.UNPUBLISHED, end
    assert sink.info.app == f"live/{INPUT_ID}"
    assert sink.info.flash_ver.startswith("FMLE/3.0 (compatible; Lavf")

    (meta,) = sink.metadata
    assert (meta["width"], meta["height"], meta["framerate"]) == (1280.0, 720.0, 30.0)
    assert (meta["videocodecid"], meta["audiocodecid"]) == (7.0, 10.0)

    video = [t for t in sink.tags if t.is_video]
    audio = [t for t in sink.tags if t.is_audio]
    assert video[0].is_sequence_header and video[0].video_header().codec == "avc1"
    assert audio[0].is_sequence_header and audio[0].audio_header().codec == "mp4a"
    frames = [t for t in video if t.video_header().packet_type == 1]
    assert len(frames) == SECONDS * FPS
    keyframes = [t.timestamp for t in frames if t.is_keyframe]
    assert len(keyframes) == 2  # 0 s and 2 s
    assert all(abs(b - a - 2000) <= 40 for a, b in itertools.pairwise(keyframes)), keyframes
    assert frames[0].is_keyframe
    # 48 kHz AAC: 1024 samples per frame.
    assert abs(len(audio) - 1 - SECONDS * 48000 / 1024) <= 3
    stamps = [t.timestamp for t in frames]
    assert stamps == sorted(stamps)

    mux = FlvMuxer()
    flv = mux.header() + mux.metadata(meta) + b"".join(mux.tag(t) for t in sink.tags)
    out = tmp_path / "out.flv"
    out.write_bytes(flv)
    header, tags = read_flv(flv)
    assert header.has_audio and header.has_video
    assert len(tags) == len(sink.tags) + 1
    decoded, duration, stderr = ffprobe_like(ffmpeg_exe, out)
    assert stderr == ""
    assert decoded == SECONDS * FPS
    assert abs(duration - SECONDS) <= 0.1, duration


async def test_ffmpeg_app_live_with_id_in_playpath(rtmp: Harness, ffmpeg_exe: str) -> None:
    url = f"rtmp://127.0.0.1:{rtmp.port}/live"
    code, err = await run(
        publish_cmd(
            ffmpeg_exe,
            url,
            "-rtmp_app",
            "live",
            "-rtmp_playpath",
            f"{INPUT_ID}/{STREAM_KEY}",
            seconds=1,
        )
    )
    assert code == 0, err
    sink = await rtmp.wait_sink()
    assert sink.info.app == "live"
    assert sink.info.external_input_id == INPUT_ID
    assert (await sink.wait_ended()).clean
    assert sum(1 for t in sink.tags if t.is_video and t.video_header().packet_type == 1) == FPS


async def test_ffmpeg_with_wrong_key_fails_with_our_reason(rtmp: Harness, ffmpeg_exe: str) -> None:
    url = f"rtmp://127.0.0.1:{rtmp.port}/live/{INPUT_ID}/sk_not_the_key"
    code, err = await run(publish_cmd(ffmpeg_exe, url, seconds=1))
    assert code != 0
    assert "invalid stream key" in err
    assert rtmp.sinks == []
    assert rtmp.auth_calls == [(INPUT_ID, "sk_not_the_key")]


async def test_publish_piped_as_flv_into_a_decoding_ffmpeg(ffmpeg_exe: str) -> None:
    """The path the transcoder takes: RTMP in, FlvSink, ffmpeg reading FLV on stdin."""
    decoder = await asyncio.create_subprocess_exec(
        ffmpeg_exe,
        "-hide_banner",
        "-nostats",
        "-v",
        "error",
        "-f",
        "flv",
        "-i",
        "pipe:0",
        "-map",
        "0:v:0",
        "-f",
        "null",
        "-progress",
        "pipe:1",
        "-",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert decoder.stdin is not None
    stdin = decoder.stdin
    ends: list[PublishEnd] = []
    sinks: list[FlvSink] = []

    async def write(data: bytes) -> None:
        stdin.write(data)
        await stdin.drain()

    async def on_end(end: PublishEnd) -> None:
        ends.append(end)
        stdin.close()

    async def factory(info: PublishInfo) -> FlvSink:
        sink = FlvSink(write, on_end=on_end)
        sinks.append(sink)
        return sink

    try:
        async with running_server(sink_factory=factory) as h:
            url = f"rtmp://127.0.0.1:{h.port}/live/{INPUT_ID}/{STREAM_KEY}"
            code, err = await run(publish_cmd(ffmpeg_exe, url, seconds=2))
            assert code == 0, err
            async with asyncio.timeout(20):
                out, derr = await decoder.communicate()
    finally:
        if decoder.returncode is None:
            decoder.kill()
            await decoder.wait()
    assert decoder.returncode == 0, derr
    assert derr == b""
    frames = [
        int(v)
        for k, _, v in (ln.partition("=") for ln in out.decode().splitlines())
        if k == "frame"
    ]
    assert frames[-1] == 2 * FPS
    assert [e.reason for e in ends] == [EndReason.UNPUBLISHED]
    assert sinks[0].bytes_written > 0 and sinks[0].late_metadata == 0


async def test_ffmpeg_publishes_hevc_over_enhanced_rtmp(
    rtmp: Harness, ffmpeg_exe: str, tmp_path: Path
) -> None:
    """Enhanced RTMP (FourCC video headers), what OBS sends for HEVC/AV1."""
    url = f"rtmp://127.0.0.1:{rtmp.port}/live/{INPUT_ID}/{STREAM_KEY}"
    code, err = await run(
        [
            ffmpeg_exe,
            "-hide_banner",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=320x240:rate={FPS}",
            "-t",
            "1",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            f"log-level=error:keyint={FPS // 2}",
            "-rtmp_enhanced_codecs",
            "hvc1",
            "-f",
            "flv",
            url,
        ]
    )
    assert code == 0, err
    sink = await rtmp.wait_sink()
    assert (await sink.wait_ended()).clean
    headers = [t.video_header() for t in sink.tags if t.is_video]
    assert all(h.enhanced and h.codec == "hvc1" for h in headers)
    assert headers[0].is_sequence_header
    frames = [t for t in sink.tags if t.video_header().packet_type in (1, 3)]
    assert len(frames) == FPS
    assert sum(t.is_keyframe for t in frames) == 2
    mux = FlvMuxer()
    out = tmp_path / "hevc.flv"
    out.write_bytes(mux.header(has_audio=False) + b"".join(mux.tag(t) for t in sink.tags))
    decoded, _, stderr = ffprobe_like(ffmpeg_exe, out)
    assert stderr == ""
    assert decoded == FPS


async def test_ffmpeg_killed_mid_stream_is_a_connection_loss(
    rtmp: Harness, ffmpeg_exe: str
) -> None:
    url = f"rtmp://127.0.0.1:{rtmp.port}/live/{INPUT_ID}/{STREAM_KEY}"
    cmd = publish_cmd(ffmpeg_exe, url, seconds=30)
    cmd[cmd.index("testsrc2=size=1280x720:rate=30")] = "testsrc2=size=320x240:rate=30"
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        sink = await rtmp.wait_sink(within=15)
        async with asyncio.timeout(15):
            while sum(t.is_video for t in sink.tags) < 15:  # noqa: ASYNC110 - real encoder
                await asyncio.sleep(0.05)
        proc.kill()  # SIGKILL: no FCUnpublish, the kernel closes the socket
        end = await sink.wait_ended()
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    assert end.reason is EndReason.CONNECTION_LOST and not end.clean
    assert rtmp.server.live_inputs() == []
