"""Ladder planning (capped, never upscaled) and the ffmpeg argv it produces."""

from __future__ import annotations

import pytest

from media.ffmpeg import FileSource, PipeSource, TestPatternSource, build_ladder_command
from media.ladder import AudioSpec, LadderSpec, VideoRung


def rungs(plan: object) -> list[tuple[str, int | None, int]]:
    return [(v.name, v.width, v.height) for v in plan.video]  # type: ignore[attr-defined]


def test_default_ladder_at_1080p() -> None:
    plan = LadderSpec().plan(1920, 1080)
    assert rungs(plan) == [("1080p", 1920, 1080), ("720p", 1280, 720), ("360p", 640, 360)]
    assert plan.names == ("1080p", "720p", "360p", "audio")
    assert plan.bitrate("720p") == 2_800_000 and plan.bitrate("audio") == 128_000


def test_capped_at_source_never_upscaled() -> None:
    assert rungs(LadderSpec().plan(1280, 720)) == [("720p", 1280, 720), ("360p", 640, 360)]
    assert rungs(LadderSpec().plan(1000, 700)) == [("360p", 514, 360)]  # aspect kept, even width
    assert rungs(LadderSpec().plan(640, 480)) == [("360p", 480, 360)]


def test_source_below_every_rung_gets_one_rendition_at_its_size() -> None:
    plan = LadderSpec().plan(320, 241)
    assert rungs(plan) == [("240p", 318, 240)]
    assert plan.video[0].bitrate == 800_000


def test_unknown_source_size_keeps_every_rung_with_expression_caps() -> None:
    plan = LadderSpec().plan()
    assert rungs(plan) == [("1080p", None, 1080), ("720p", None, 720), ("360p", None, 360)]
    cmd = build_ladder_command(
        "ffmpeg", PipeSource(), plan, {n: f"pipe:{i + 3}" for i, n in enumerate(plan.names)}
    )
    graph = cmd[cmd.index("-filter_complex") + 1]
    assert "scale=w=-2:h='min(720,ih)'" in graph and "split=3" in graph


def test_command_has_aligned_keyframes_and_cmaf_outputs() -> None:
    spec = LadderSpec(group_duration=2.0, chunk_duration=0.5)
    plan = spec.plan(1280, 720)
    targets = {"720p": "pipe:5", "360p": "pipe:6", "audio": "pipe:7"}
    cmd = build_ladder_command("ffmpeg", TestPatternSource(), plan, targets)
    assert cmd.count("libx264") == 2
    assert cmd.count("expr:gte(t,n_forced*2.0)") == 2
    assert (
        cmd.count("-sc_threshold") == 2
        and cmd.count("zerolatency") == 2
        and cmd.count("veryfast") == 2
    )
    assert cmd.count("500000") == 3  # -frag_duration, in microseconds, on every output
    assert [a for a in cmd if a.startswith("pipe:")] == ["pipe:5", "pipe:6", "pipe:7"]
    movflags = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-movflags"]
    assert all(
        "empty_moov" in m and "default_base_moof" in m and "frag_keyframe" in m for m in movflags
    )
    assert cmd[cmd.index("-map", cmd.index("pipe:6")) + 1] == "1:a:0"  # lavfi sine is input 1
    assert "-nostdin" in cmd and "1080p" not in " ".join(cmd)


def test_pipe_source_reads_stdin_and_no_audio_when_absent() -> None:
    plan = LadderSpec().plan(640, 360)
    cmd = build_ladder_command("ffmpeg", PipeSource(has_audio=False), plan, {"360p": "pipe:3"})
    assert "pipe:0" in cmd and "-nostdin" not in cmd and "aac" not in cmd
    file_cmd = build_ladder_command("ffmpeg", FileSource("in.mp4", realtime=True), plan,
                                    {"360p": "pipe:3", "audio": "pipe:4"})  # fmt: skip
    assert file_cmd[file_cmd.index("-re") + 1 : file_cmd.index("-re") + 3] == ["-i", "in.mp4"]


def test_opus_audio() -> None:
    spec = LadderSpec(audio=AudioSpec(codec="opus", bitrate=64_000))
    cmd = build_ladder_command(
        "ffmpeg", TestPatternSource(), spec.plan(640, 360), {"360p": "pipe:3", "audio": "pipe:4"}
    )
    assert "libopus" in cmd


@pytest.mark.parametrize(
    "make",
    [
        lambda: VideoRung("x", 719, 1),
        lambda: VideoRung("", 720, 1),
        lambda: VideoRung("a/b", 720, 1),
        lambda: VideoRung("x", 720, 0),
        lambda: AudioSpec(codec="mp3"),
        lambda: AudioSpec(codec="opus", sample_rate=44100),
        lambda: LadderSpec(video=(), audio=None),
        lambda: LadderSpec(video=(VideoRung("a", 360, 1), VideoRung("a", 240, 1))),
        lambda: LadderSpec(chunk_duration=3.0, group_duration=2.0),
        lambda: LadderSpec(group_duration=0),
        lambda: LadderSpec().plan(1280, None),
        lambda: LadderSpec().plan(0, 0),
    ],
)
def test_invalid_specs(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]
