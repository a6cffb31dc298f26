"""Small real media files for the on-demand tests, made with ffmpeg's lavfi sources."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def make_clip(
    path: Path,
    *,
    seconds: float = 4.0,
    width: int = 640,
    height: int = 360,
    fps: int = 30,
    audio: bool = True,
    faststart: bool = False,
) -> Path:
    """An H.264 (+ AAC) MP4 of ``testsrc2`` (+ a ``sine`` tone)."""
    args = [
        FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}",
    ]  # fmt: skip
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-b:a", "96k"]
    if faststart:
        args += ["-movflags", "+faststart"]
    subprocess.run([*args, str(path)], check=True, timeout=120)
    return path


def cut_in_half(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def decode_playlist(url: str, *, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Read an HLS playlist (and every segment it lists) with ffmpeg, as a player would."""
    return subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", *extra, "-i", url, "-map", "0", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def ffprobe(url: str) -> dict[str, Any]:
    """What Debian's ffprobe (the Makefile installs it) reads of a playlist: format and streams."""
    probe = shutil.which("ffprobe")
    assert probe is not None, "ffprobe is missing: run make install (Debian package ffmpeg)"
    done = subprocess.run(
        [probe, "-v", "error", "-show_format", "-show_streams", "-of", "json", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result
