"""Is an upload of unknown length a whole file? The ISO BMFF box check (docs/vod.md).

The seed's upload form never says how long the file is. A file counts as whole when
its top-level boxes' sizes add up exactly to the bytes stored, the last box is not
open-ended (size 0, "to the end of the file") and a ``moov`` box is present. A file
cut anywhere inside a box fails the check, so a half-sent file is never packaged.
(A cut that falls exactly on a box boundary after ``moov`` passes; the idle wait
before completing covers a client that is still sending.)
"""

from __future__ import annotations

import struct
from pathlib import Path

__all__ = ["BoxScan", "scan_boxes"]

_MAX_BOXES = 100_000


class BoxScan:
    """The result of walking the top-level boxes of a file."""

    __slots__ = ("boxes", "complete", "end", "has_moov")

    def __init__(self, complete: bool, has_moov: bool, end: int, boxes: list[str]) -> None:
        self.complete = complete
        self.has_moov = has_moov
        self.end = end
        self.boxes = boxes

    @property
    def whole_mp4(self) -> bool:
        return self.complete and self.has_moov


def scan_boxes(path: Path, size: int | None = None) -> BoxScan:
    """Walk the top-level boxes of the first ``size`` bytes (default: the whole file)."""
    with open(path, "rb") as f:
        if size is None:
            f.seek(0, 2)
            size = f.tell()
        pos = 0
        boxes: list[str] = []
        has_moov = False
        while pos < size and len(boxes) < _MAX_BOXES:
            if size - pos < 8:
                return BoxScan(False, has_moov, pos, boxes)
            f.seek(pos)
            header = f.read(16)
            box_size, kind = struct.unpack(">I4s", header[:8])
            if box_size == 1:
                if len(header) < 16:
                    return BoxScan(False, has_moov, pos, boxes)
                box_size = struct.unpack(">Q", header[8:16])[0]
                if box_size < 16:
                    return BoxScan(False, has_moov, pos, boxes)
            elif box_size == 0 or box_size < 8:
                # Open-ended (to the end of the file) or malformed: never "whole".
                return BoxScan(False, has_moov, pos, boxes)
            name = kind.decode("latin-1")
            if not all(32 <= ord(c) < 127 for c in name):
                return BoxScan(False, has_moov, pos, boxes)
            boxes.append(name)
            has_moov = has_moov or name == "moov"
            pos += box_size
        return BoxScan(pos == size and size > 0, has_moov, pos, boxes)
