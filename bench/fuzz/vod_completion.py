"""The ISO BMFF whole-file check of uploads of unknown length: ``scan_boxes``.

The input is the uploaded file's bytes (written to a scratch file, as the upload
store holds them). ``scan_boxes`` has no error of its own: it must answer (whole or
not) for any bytes, so nothing is allowed to raise.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

from vod.completion import scan_boxes

__all__ = ["TestOneInput", "seeds"]

_DIR = tempfile.TemporaryDirectory(prefix="fuzz-upload-")
_FILE = Path(_DIR.name) / "upload"


def TestOneInput(data: bytes) -> None:
    _FILE.write_bytes(data)
    scan = scan_boxes(_FILE)
    if scan.end > len(data) and scan.complete:
        raise AssertionError("a scan past the end of the file counts as whole")
    if data:
        scan_boxes(_FILE, len(data) // 2)


def seeds() -> Iterator[bytes]:
    """ffmpeg-made MP4s (fragmented and whole), cut and uncut."""
    from bench.fuzz._media_seeds import ffmpeg_fmp4

    for name, data in ffmpeg_fmp4().items():
        yield data
        if name == "video":
            yield data[: len(data) // 3]
