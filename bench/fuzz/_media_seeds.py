"""Tiny real fMP4 streams made by ffmpeg (imageio-ffmpeg's binary), for the media seeds."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

__all__ = ["ffmpeg_fmp4"]

_CMAF = ["-f", "mp4", "-movflags", "empty_moov+default_base_moof+frag_keyframe+cmaf"]


def ffmpeg_fmp4() -> dict[str, bytes]:
    """Video-only, audio-only and muxed CMAF of a fraction of a second (a few kB each)."""
    import imageio_ffmpeg

    exe = imageio_ffmpeg.get_ffmpeg_exe()
    video = ["-f", "lavfi", "-i", "testsrc2=size=32x32:rate=10:duration=0.4"]
    venc = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "2", "-pix_fmt", "yuv420p"]
    audio = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000:duration=0.4"]
    aenc = ["-c:a", "aac", "-b:a", "16k", "-ac", "1"]
    jobs = {
        "video": [*video, *venc, "-frag_duration", "100000", "-write_prft", "wallclock"],
        "audio": [*audio, *aenc, "-frag_duration", "200000"],
        "muxed": [*video, *audio, *venc, *aenc, "-frag_duration", "200000"],
    }
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in jobs.items():
            path = Path(tmp) / f"{name}.mp4"
            cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args, *_CMAF]
            subprocess.run([*cmd, str(path)], check=True, timeout=60)
            out[name] = path.read_bytes()
    return out
