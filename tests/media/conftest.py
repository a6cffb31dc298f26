"""Real ffmpeg-made CMAF streams shared by the media tests (generated once per session, small)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
CMAF_FLAGS = [
    "-f",
    "mp4",
    "-movflags",
    "empty_moov+default_base_moof+frag_keyframe+cmaf",
    "-frag_duration",
    "500000",
]


def ffmpeg(*args: str) -> None:
    subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
        check=True,
        timeout=60,
    )


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def video_fmp4(media_dir: Path) -> bytes:
    """4 s of 640x360 30 fps H.264, 2 s GOPs, 500 ms chunks, with prft boxes."""
    out = media_dir / "video.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=4",
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
        "-g", "60", "-sc_threshold", "0", "-force_key_frames", "expr:gte(t,n_forced*2)",
        *CMAF_FLAGS, "-write_prft", "wallclock", str(out),
    )  # fmt: skip
    return out.read_bytes()


@pytest.fixture(scope="session")
def audio_fmp4(media_dir: Path) -> bytes:
    """4 s of 48 kHz stereo AAC-LC at 128 kb/s, 500 ms chunks."""
    out = media_dir / "audio.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4",
        "-c:a", "aac", "-b:a", "128k", "-ac", "2", *CMAF_FLAGS, str(out),
    )  # fmt: skip
    return out.read_bytes()


@pytest.fixture(scope="session")
def hevc_fmp4(media_dir: Path) -> bytes:
    out = media_dir / "hevc.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=192x108:rate=10:duration=0.5",
        "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
        "-tag:v", "hvc1", "-pix_fmt", "yuv420p", *CMAF_FLAGS, str(out),
    )  # fmt: skip
    return out.read_bytes()


@pytest.fixture(scope="session")
def opus_fmp4(media_dir: Path) -> bytes:
    out = media_dir / "opus.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1",
        "-c:a", "libopus", "-b:a", "64k", "-ac", "2", *CMAF_FLAGS, str(out),
    )  # fmt: skip
    return out.read_bytes()


@pytest.fixture(scope="session")
def muxed_fmp4(media_dir: Path) -> bytes:
    """3 s of muxed H.264 + AAC in one fragmented MP4: each moof has a traf per track."""
    out = media_dir / "muxed.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=3",
        "-f", "lavfi", "-i", "sine=duration=3:sample_rate=48000",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-c:a", "aac",
        "-f", "mp4", "-movflags", "empty_moov+default_base_moof+frag_keyframe+delay_moov",
        "-frag_duration", "500000", str(out),
    )  # fmt: skip
    return out.read_bytes()
