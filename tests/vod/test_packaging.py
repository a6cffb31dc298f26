"""Packaging a real file with the real ffmpeg ladder: CMAF groups, catalog, HLS, typed failures."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from media.catalog import Catalog
from media.fmp4 import Fragment, InitSegment, split_fmp4
from media.ladder import LadderSpec
from vod.packaging import PackagingFailed, PackagingJob, package_asset

from ._clips import FFMPEG, cut_in_half, decode_playlist, make_clip


def _job(source: Path, out: Path, max_duration: float | None = 60.0) -> PackagingJob:
    return PackagingJob("as_test", "pb_test", "stream/org_1/pb_test", source, out, max_duration)


@pytest.fixture(scope="module")
def clip_720(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "c720.mp4", seconds=5, width=1280,
                     height=720)  # fmt: skip


@pytest.fixture(scope="module")
def packaged(
    clip_720: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, object, list[float]]:
    import asyncio

    out = tmp_path_factory.mktemp("assets") / "as_test"
    progress: list[float] = []
    result = asyncio.run(package_asset(_job(clip_720, out), on_progress=progress.append))
    return out, result, progress


def test_ladder_is_capped_at_the_source_and_reported(packaged: tuple[Path, object, list[float]]):
    out, result, progress = packaged
    names = {r.name: r for r in result.renditions}  # type: ignore[attr-defined]
    assert set(names) == {"720p", "360p", "audio"}  # 1080p is never an upscale
    assert (names["720p"].width, names["720p"].height) == (1280, 720)
    assert (names["360p"].width, names["360p"].height) == (640, 360)
    assert names["audio"].codec == "mp4a.40.2" and names["720p"].codec.startswith("avc1.")
    assert 4.9 <= result.duration_s <= 5.2  # type: ignore[attr-defined]
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert result.size_bytes == size  # type: ignore[attr-defined]
    assert progress and progress[-1] == 100.0 and progress == sorted(progress)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # temp dir renamed


def test_catalog_parses_with_the_live_parser_and_has_a_timeline(
    packaged: tuple[Path, object, list[float]],
):
    out, _, _ = packaged
    catalog = Catalog.parse((out / "catalog.json").read_bytes())
    assert catalog.is_complete
    for track in catalog.tracks:
        assert track.is_live is False
        assert track.track_duration is not None and 4900 <= track.track_duration <= 5200
        assert track.init_data == (out / track.name / "init.mp4").read_bytes()
        assert track.timeline is not None
        groups = [g for _, (g, _), _ in track.timeline]
        assert groups == [0, 1, 2]  # 5 s on 2 s groups
        assert all(obj == 0 and wall == 0 for _, (_, obj), wall in track.timeline)
        assert sorted(int(p.stem) for p in (out / track.name).glob("*.m4s")) == groups
    videos = catalog.by_role("video")
    # time-aligned renditions: the same group starts at the same time on every video track
    assert videos[0].timeline == videos[1].timeline
    assert [pts for pts, _, _ in videos[0].timeline or ()] == [0, 2000, 4000]
    assert videos[0].framerate == 30
    raw = json.loads((out / "catalog.json").read_bytes())
    assert raw["tracks"][0]["timeline"][1] == [
        catalog.tracks[0].timeline[1][0],  # type: ignore[index]
        [1, 0],
        0,
    ]


def test_every_segment_is_one_closed_gop_on_the_group_grid(
    packaged: tuple[Path, object, list[float]],
):
    out, _, _ = packaged
    for track in ("720p", "360p"):
        init = (out / track / "init.mp4").read_bytes()
        for group in (0, 1, 2):
            items = split_fmp4(init + (out / track / f"{group}.m4s").read_bytes())
            assert isinstance(items[0], InitSegment)
            fragments = [i for i in items if isinstance(i, Fragment)]
            assert fragments[0].keyframe
            assert not any(f.keyframe for f in fragments[1:])
            assert fragments[0].start_seconds == pytest.approx(2.0 * group, abs=0.001)


def test_hls_master_is_read_by_ffmpeg(packaged: tuple[Path, object, list[float]]):
    out, _, _ = packaged
    master = (out / "master.m3u8").read_text()
    assert master.startswith("#EXTM3U")
    assert '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio"' in master
    assert re.search(r"RESOLUTION=1280x720.*\n720p/index\.m3u8", master)
    media = (out / "360p" / "index.m3u8").read_text()
    assert '#EXT-X-MAP:URI="init.mp4"' in media and media.rstrip().endswith("#EXT-X-ENDLIST")
    assert media.count("#EXTINF:") == 3
    probe = decode_playlist(str(out / "master.m3u8"))
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert "Video: h264" in probe.stderr and "Audio: aac" in probe.stderr
    frames = [int(m) for m in re.findall(r"frame=\s*(\d+)", probe.stderr)]
    assert frames and frames[-1] == 150  # 5 s at 30 fps, every segment decoded
    assert len(re.findall(r"Stream #0:\d+.*: Video: h264", probe.stderr)) == 2  # both variants


@pytest.mark.parametrize(
    "data",
    [os.urandom(100_000), bytes(range(256)) * 400],  # the second passes for "binary text" art
    ids=["random", "pattern"],
)
async def test_random_bytes_are_not_media(tmp_path: Path, data: bytes):
    source = tmp_path / "up.bin"
    source.write_bytes(data)
    with pytest.raises(PackagingFailed) as err:
        await package_asset(_job(source, tmp_path / "out"))
    assert err.value.code == "not_media" and "not a video or audio file" in str(err.value)
    assert not err.value.retryable
    assert sorted(os.listdir(tmp_path)) == ["up.bin"]


async def test_a_text_file_is_not_media(tmp_path: Path):
    source = tmp_path / "up.bin"
    source.write_text("name,size\nholiday.mov,12345\n" * 50)
    with pytest.raises(PackagingFailed) as err:
        await package_asset(_job(source, tmp_path / "out"))
    assert err.value.code == "not_media"


@pytest.mark.parametrize("faststart", [False, True])
async def test_a_file_cut_in_half_is_truncated(tmp_path: Path, faststart: bool):
    whole = make_clip(tmp_path / "whole.mp4", seconds=4, faststart=faststart)
    half = cut_in_half(whole, tmp_path / "half.bin")
    with pytest.raises(PackagingFailed) as err:
        await package_asset(_job(half, tmp_path / "out"))
    assert err.value.code == "truncated"
    assert "ends early" in str(err.value)
    assert not (tmp_path / "out").exists()


async def test_a_truncated_matroska_is_truncated(tmp_path: Path):
    """Matroska has no box sizes to check: its declared duration against the decode gives it away."""
    whole = tmp_path / "whole.mkv"
    make_clip(whole, seconds=6)
    half = cut_in_half(whole, tmp_path / "half.bin")
    with pytest.raises(PackagingFailed) as err:
        await package_asset(_job(half, tmp_path / "out"), ladder=LadderSpec.single(360, 500_000))
    assert err.value.code == "truncated", str(err.value)


async def test_longer_than_the_maximum_is_too_long(tmp_path: Path):
    clip = make_clip(tmp_path / "c.mp4", seconds=4)
    with pytest.raises(PackagingFailed) as err:
        await package_asset(_job(clip, tmp_path / "out", max_duration=2.0))
    assert err.value.code == "too_long"
    assert "at most 2.0 s" in str(err.value)
    assert sorted(os.listdir(tmp_path)) == ["c.mp4"]


async def test_repackaging_replaces_the_asset_atomically(tmp_path: Path):
    clip = make_clip(tmp_path / "c.mp4", seconds=2, audio=False)
    out = tmp_path / "assets" / "as_1"
    ladder = LadderSpec.single(360, 500_000, audio=None)
    first = await package_asset(_job(clip, out), ladder=ladder)
    (out / "stale.txt").write_text("from before")
    second = await package_asset(_job(clip, out), ladder=ladder)
    assert [r.name for r in first.renditions] == [r.name for r in second.renditions] == ["360p"]
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["as_1"]
    Catalog.parse((out / "catalog.json").read_bytes())


async def test_a_concat_script_cannot_read_another_upload(tmp_path: Path):
    """ffmpeg auto-detects ffconcat scripts: one naming a sibling upload must not package it."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    make_clip(uploads / "victim.mp4", seconds=2).rename(uploads / "as_victim.bin")
    script = uploads / "as_attacker.bin"
    script.write_text("ffconcat version 1.0\nfile as_victim.bin\n")
    with pytest.raises(PackagingFailed) as err:
        await package_asset(_job(script, tmp_path / "out"))
    assert err.value.code == "not_media"
    assert not (tmp_path / "out").exists()


async def test_a_playlist_cannot_make_ffmpeg_fetch_urls(tmp_path: Path):
    hits: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits.append(await reader.read(1024))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    source = tmp_path / "up.m3u8"  # the standard extension, so the hls demuxer would take it
    source.write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nhttp://127.0.0.1:{port}/a.ts\n"
        "#EXT-X-ENDLIST\n"
    )
    try:
        with pytest.raises(PackagingFailed) as err:
            await package_asset(_job(source, tmp_path / "out"))
    finally:
        server.close()
        await server.wait_closed()
    assert err.value.code == "not_media"
    assert hits == []


async def test_a_stalled_ffmpeg_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    clip = make_clip(tmp_path / "c.mp4", seconds=2)
    script = tmp_path / "ffmpeg"  # probes run; the ladder "runs" but never writes a byte
    script.write_text(
        f'#!/bin/sh\ncase "$*" in *-map*) exec sleep 60;; esac\nexec "{FFMPEG}" "$@"\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("CLUTCHCALL_FFMPEG", str(script))
    started = time.monotonic()
    with pytest.raises(PackagingFailed) as err:
        await package_asset(_job(clip, tmp_path / "out"), stall_timeout=1.0)
    assert err.value.code == "packaging_failed" and err.value.retryable
    assert "stopped making progress" in str(err.value)
    assert time.monotonic() - started < 15
    assert sorted(os.listdir(tmp_path)) == ["c.mp4", "ffmpeg"]


async def test_temp_dirs_of_a_dead_worker_are_removed(tmp_path: Path):
    clip = make_clip(tmp_path / "c.mp4", seconds=2, audio=False)
    out = tmp_path / "assets" / "as_1"
    out.parent.mkdir()
    abandoned = out.parent / ".as_1.tmp-dead"
    (abandoned / "360p").mkdir(parents=True)
    (abandoned / "360p" / "0.m4s").write_bytes(b"x")
    for path in (abandoned / "360p" / "0.m4s", abandoned / "360p", abandoned):
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    busy = out.parent / ".as_1.tmp-busy"  # a live worker's: written to just now
    busy.mkdir()
    other = out.parent / ".as_2.tmp-old"  # another asset's: not ours to judge
    other.mkdir()
    os.utime(other, (time.time() - 3600, time.time() - 3600))
    await package_asset(_job(clip, out), ladder=LadderSpec.single(360, 500_000, audio=None))
    assert sorted(os.listdir(out.parent)) == [".as_1.tmp-busy", ".as_2.tmp-old", "as_1"]


async def test_an_audio_only_file_is_packaged_as_audio(tmp_path: Path):
    source = tmp_path / "song.bin"
    await asyncio.to_thread(
        subprocess.run,
        [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", "sine=frequency=330:sample_rate=44100:duration=3", "-c:a", "aac", "-f", "mp4",
         str(source)],
        check=True, timeout=60,
    )  # fmt: skip
    out = tmp_path / "out"
    result = await package_asset(_job(source, out))
    assert [(r.name, r.codec) for r in result.renditions] == [("audio", "mp4a.40.2")]
    catalog = Catalog.parse((out / "catalog.json").read_bytes())
    (track,) = catalog.tracks
    assert track.samplerate == 48_000 and track.timeline is not None and len(track.timeline) == 2
    master = (out / "master.m3u8").read_text()
    assert "#EXT-X-STREAM-INF:BANDWIDTH=" in master and 'CODECS="mp4a.40.2"' in master
    played = await asyncio.to_thread(decode_playlist, str(out / "master.m3u8"))
    assert played.returncode == 0, played.stderr[-2000:]
    assert "Audio: aac" in played.stderr and "Video:" not in played.stderr


async def test_a_portrait_phone_video_keeps_its_shape(tmp_path: Path):
    """Stored 640x360 with a 90 degree display rotation: decoded upright, so planned as 360x640."""
    stored = make_clip(tmp_path / "stored.mp4", seconds=2, audio=False)
    rotated = tmp_path / "portrait.mp4"
    await asyncio.to_thread(
        subprocess.run,
        [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
         "-display_rotation", "90", "-i", str(stored), "-c", "copy", str(rotated)],
        check=True, timeout=60,
    )  # fmt: skip
    out = tmp_path / "out"
    result = await package_asset(_job(rotated, out))
    (video,) = result.renditions
    assert (video.name, video.width, video.height) == ("360p", 202, 360)
    track = Catalog.parse((out / "catalog.json").read_bytes()).tracks[0]
    assert (track.width, track.height) == (202, 360)
