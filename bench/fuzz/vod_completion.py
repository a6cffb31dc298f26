"""The ISO BMFF whole-file check of uploads of unknown length: ``scan_boxes``, ``completion``.

The input is the uploaded file's bytes (written to a scratch file, as the upload
store holds them). Neither has an error of its own: they must answer (whole or not)
for any bytes, so nothing is allowed to raise.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

from vod.completion import FRAGMENTS, INCOMPLETE, WHOLE, completion, scan_boxes

__all__ = ["TestOneInput", "seeds"]

_DIR = tempfile.TemporaryDirectory(prefix="fuzz-upload-")
_FILE = Path(_DIR.name) / "upload"


def TestOneInput(data: bytes) -> None:
    _FILE.write_bytes(data)
    scan = scan_boxes(_FILE)
    if scan.end > len(data) and scan.complete:
        raise AssertionError("a scan past the end of the file counts as whole")
    if completion(_FILE) not in (WHOLE, FRAGMENTS, INCOMPLETE):
        raise AssertionError("completion answered something else")
    if completion(_FILE) != INCOMPLETE and not scan.whole_mp4:
        raise AssertionError("complete without whole top-level boxes and a moov")
    if data:
        scan_boxes(_FILE, len(data) // 2)
        completion(_FILE, len(data) // 2)


def seeds() -> Iterator[bytes]:
    """ffmpeg-made MP4s (fragmented and whole, faststart or not), cut and uncut."""
    from bench.fuzz._media_seeds import ffmpeg_fmp4

    for name, data in ffmpeg_fmp4().items():
        yield data
        if name == "video":
            yield data[: len(data) // 3]
    for flags in ([], ["-movflags", "+faststart"]):
        data = _plain_mp4(flags)
        yield data
        yield data[: len(data) // 2]


def _plain_mp4(flags: list[str]) -> bytes:
    """A tiny not-fragmented MP4 (its moov has sample tables: stco, stsc, stsz)."""
    import subprocess

    import imageio_ffmpeg

    path = Path(_DIR.name) / "plain.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
            "-y", "-f", "lavfi", "-i", "testsrc2=size=32x32:rate=10:duration=0.4",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000:duration=0.4",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "2", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "16k", "-ac", "1", *flags, str(path),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    return path.read_bytes()
