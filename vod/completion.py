"""Is an upload of unknown length a whole file? The ISO BMFF checks of docs/vod.md.

The seed's upload form never says how long the file is, so the bytes must say it:

- the top-level boxes' sizes add up exactly to the bytes stored, the last box is not
  open-ended (size 0, "to the end of the file") and a ``moov`` box is present;
- a plain (not fragmented) file: every sample the ``moov`` sample tables reference
  (per track, the ``stco``/``co64`` chunk offsets with the ``stsc`` samples per chunk
  and the ``stsz``/``stz2`` sample sizes) lies within the bytes stored. A faststart
  file (``moov`` first) cut at a box boundary before the end of its media fails this;
- a fragmented file (``mvex`` in ``moov``): whole at once when it ends with ``mfra``;
  when its last boxes are a complete ``moof`` + ``mdat`` pair, more fragments may still
  come, so the caller waits a longer idle (:data:`FRAGMENTS`).

Any malformed input is "not complete" (:data:`INCOMPLETE`), never an exception.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Sequence
from itertools import accumulate
from pathlib import Path
from typing import Final, Literal

from media._boxes import Box, FieldReader, find_child, iter_boxes
from media.errors import MalformedBox

__all__ = [
    "FRAGMENTS",
    "INCOMPLETE",
    "WHOLE",
    "BoxScan",
    "Completion",
    "completion",
    "scan_boxes",
]

Completion = Literal["incomplete", "whole", "fragments"]
INCOMPLETE: Final = "incomplete"
WHOLE: Final = "whole"  # complete once idle for upload_idle_seconds
FRAGMENTS: Final = "fragments"  # complete once idle for upload_idle_fragmented_seconds

_MAX_BOXES = 100_000
MAX_MOOV_BYTES: Final = 64 * 1024 * 1024  # a bigger moov is not read: never "whole"
_LITTLE = sys.byteorder == "little"


class _Bad(Exception):
    """Malformed sample tables (internal: ends as INCOMPLETE)."""


class BoxScan:
    """The result of walking the top-level boxes of a file."""

    __slots__ = ("boxes", "complete", "end", "has_moov", "moov")

    def __init__(
        self,
        complete: bool,
        has_moov: bool,
        end: int,
        boxes: list[str],
        moov: tuple[int, int] | None = None,
    ) -> None:
        self.complete = complete
        self.has_moov = has_moov
        self.end = end
        self.boxes = boxes
        self.moov = moov  # (offset, size) of the first moov box

    @property
    def whole_mp4(self) -> bool:
        """The top-level boxes tile the file and one is ``moov`` (see :func:`completion`)."""
        return self.complete and self.has_moov


def scan_boxes(path: Path, size: int | None = None) -> BoxScan:
    """Walk the top-level boxes of the first ``size`` bytes (default: the whole file)."""
    with open(path, "rb") as f:
        if size is None:
            f.seek(0, 2)
            size = f.tell()
        pos = 0
        boxes: list[str] = []
        moov: tuple[int, int] | None = None
        while pos < size and len(boxes) < _MAX_BOXES:
            if size - pos < 8:
                return BoxScan(False, moov is not None, pos, boxes, moov)
            f.seek(pos)
            header = f.read(16)
            if len(header) < 8:
                return BoxScan(False, moov is not None, pos, boxes, moov)
            box_size, kind = struct.unpack(">I4s", header[:8])
            if box_size == 1:
                if len(header) < 16:
                    return BoxScan(False, moov is not None, pos, boxes, moov)
                box_size = struct.unpack(">Q", header[8:16])[0]
                if box_size < 16:
                    return BoxScan(False, moov is not None, pos, boxes, moov)
            elif box_size == 0 or box_size < 8:
                # Open-ended (to the end of the file) or malformed: never "whole".
                return BoxScan(False, moov is not None, pos, boxes, moov)
            name = kind.decode("latin-1")
            if not all(32 <= ord(c) < 127 for c in name):
                return BoxScan(False, moov is not None, pos, boxes, moov)
            boxes.append(name)
            if name == "moov" and moov is None:
                moov = (pos, box_size)
            pos += box_size
        return BoxScan(pos == size and size > 0, moov is not None, pos, boxes, moov)


def completion(path: Path, size: int | None = None) -> Completion:
    """Whether the first ``size`` bytes of ``path`` are a whole file (module docstring)."""
    try:
        scan = scan_boxes(path, size)
        if not scan.whole_mp4 or scan.moov is None:
            return INCOMPLETE
        offset, moov_size = scan.moov
        if moov_size > MAX_MOOV_BYTES:
            return INCOMPLETE
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(moov_size)
        if len(data) != moov_size:
            return INCOMPLETE
        return _judge(data, scan.end, scan.boxes)
    except (OSError, MalformedBox, _Bad, ValueError, IndexError, OverflowError, struct.error):
        return INCOMPLETE


def _judge(moov_data: bytes, size: int, boxes: list[str]) -> Completion:
    [moov] = list(iter_boxes(moov_data))
    kids = list(iter_boxes(moov_data, moov.payload_start, moov.end))
    if any(k.type == "mvex" for k in kids):
        if boxes[-1] == "mfra":
            return WHOLE
        if len(boxes) >= 2 and boxes[-2:] == ["moof", "mdat"]:
            return FRAGMENTS
        return INCOMPLETE
    for trak in kids:
        if trak.type == "trak" and _track_end(trak) > size:
            return INCOMPLETE
    return WHOLE


def _child(box: Box, *path: str) -> Box:
    for name in path:
        found = find_child(box, name)
        if found is None:
            raise _Bad(f"no {name} in {box.type}")
        box = found
    return box


def _table(r: FieldReader, count: int, width: int) -> Sequence[int]:
    """``count`` big-endian unsigned integers of ``width`` bytes (1, 2, 4 or 8)."""
    if count < 0 or count * width > r.remaining:
        raise _Bad("a table runs past its box")
    raw = r.bytes(count * width)
    if width == 1:
        return raw
    values = array({2: "H", 4: "I", 8: "Q"}[width])
    if values.itemsize != width:  # pragma: no cover - every Linux/macOS build
        return [int.from_bytes(raw[i : i + width], "big") for i in range(0, len(raw), width)]
    values.frombytes(raw)
    if _LITTLE:
        values.byteswap()
    return values


def _sample_sizes(stbl: Box) -> tuple[int, int, Sequence[int]]:
    """``(fixed size or 0, sample count, sizes table)`` from ``stsz`` or ``stz2``."""
    stsz = find_child(stbl, "stsz")
    if stsz is not None:
        r = stsz.reader(full_box=True)
        fixed, count = r.u32(), r.u32()
        return (fixed, count, ()) if fixed else (0, count, _table(r, count, 4))
    r = _child(stbl, "stz2").reader(full_box=True)
    r.skip(3)
    field, count = r.u8(), r.u32()
    if field == 4:
        packed = _table(r, (count + 1) // 2, 1)
        return 0, count, [(packed[i // 2] >> (0 if i % 2 else 4)) & 0xF for i in range(count)]
    if field not in (8, 16):
        raise _Bad(f"stz2 field size {field}")
    return 0, count, _table(r, count, field // 8)


def _track_end(trak: Box) -> int:
    """The end of the last byte any sample of this track occupies in the file (0: none)."""
    stbl = _child(trak, "mdia", "minf", "stbl")
    co = find_child(stbl, "stco")
    if co is not None:
        r = co.reader(full_box=True)
        offsets = _table(r, r.u32(), 4)
    else:
        r = _child(stbl, "co64").reader(full_box=True)
        offsets = _table(r, r.u32(), 8)
    r = _child(stbl, "stsc").reader(full_box=True)
    runs = _table(r, r.u32() * 3, 4)
    fixed, count, sizes = _sample_sizes(stbl)
    cumulative = [0, *accumulate(sizes)]
    chunks = len(offsets)
    sample = end = 0
    for j in range(0, len(runs), 3):
        first, per_chunk = runs[j], runs[j + 1]
        last = runs[j + 3] if j + 3 < len(runs) else chunks + 1
        if first < 1 or last <= first or (j + 3 < len(runs) and last > chunks + 1):
            raise _Bad("stsc runs out of order")
        for chunk in range(first, min(last, chunks + 1)):
            if sample + per_chunk > count:
                raise _Bad("stsc names more samples than stsz has")
            if per_chunk:
                if fixed:
                    length = fixed * per_chunk
                else:
                    length = cumulative[sample + per_chunk] - cumulative[sample]
                end = max(end, offsets[chunk - 1] + length)
            sample += per_chunk
    if sample != count:
        raise _Bad("stsc and stsz disagree on the sample count")
    return end
