"""ISO-BMFF (ISO/IEC 14496-12) box reader: headers, iteration, a bounded field reader.

Everything here works on complete byte strings. The incremental layer (which
waits for a whole top-level box) lives in :mod:`media.fmp4`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import MalformedBox

__all__ = [
    "Box",
    "FieldReader",
    "box_header",
    "children",
    "find_child",
    "iter_boxes",
    "make_box",
]

# Box types are four bytes; real ones are printable ASCII (letters, digits, space,
# and the (c) sign 0xA9 of QuickTime metadata atoms).
_TYPE_OK = frozenset(range(0x20, 0x7F)) | {0xA9}


@dataclass(frozen=True, slots=True)
class Box:
    """One box inside ``data``: ``data[start:end]`` is the whole box."""

    type: str
    data: bytes
    start: int
    end: int
    header_size: int

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def payload_start(self) -> int:
        return self.start + self.header_size

    def payload(self) -> bytes:
        return self.data[self.start + self.header_size : self.end]

    def raw(self) -> bytes:
        return self.data[self.start : self.end]

    def reader(self, *, full_box: bool = False) -> FieldReader:
        r = FieldReader(self.data, self.payload_start, self.end, self.type)
        if full_box:
            r.version_flags()
        return r


def box_header(data: bytes | bytearray, offset: int, end: int) -> tuple[str, int, int] | None:
    """Read the header at ``offset``: ``(type, total_size, header_size)``.

    Returns ``None`` when fewer than a header's bytes are available before ``end``.
    ``total_size`` 0 means "to the end of the enclosing space" (ISO-BMFF size 0).
    Raises :class:`MalformedBox` for a bad type or a size smaller than the header.
    """
    if end - offset < 8:
        return None
    size = int.from_bytes(data[offset : offset + 4], "big")
    raw_type = bytes(data[offset + 4 : offset + 8])
    if any(b not in _TYPE_OK for b in raw_type):
        raise MalformedBox(f"invalid box type bytes {raw_type!r}", offset=offset)
    box_type = raw_type.decode("latin-1")
    header = 8
    if size == 1:
        if end - offset < 16:
            return None
        size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        header = 16
    if box_type == "uuid":
        header += 16
        if size != 0 and size < header:
            raise MalformedBox(
                f"box size {size} smaller than its header", box_type=box_type, offset=offset
            )
        if end - offset < header:
            return None
    if size != 0 and size < header:
        raise MalformedBox(
            f"box size {size} smaller than its header", box_type=box_type, offset=offset
        )
    return box_type, size, header


def iter_boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """Iterate the boxes that exactly tile ``data[start:end]``.

    The space is complete (a whole file or a parent box's payload), so a box
    running past ``end`` or a stray tail is malformed, never "need more data".
    """
    stop = len(data) if end is None else end
    pos = start
    while pos < stop:
        header = box_header(data, pos, stop)
        if header is None:
            raise MalformedBox(
                f"{stop - pos} stray bytes where a box header was expected", offset=pos
            )
        box_type, size, header_size = header
        if size == 0:
            size = stop - pos
        if pos + size > stop:
            raise MalformedBox(
                f"box of {size} bytes overruns its container by {pos + size - stop}",
                box_type=box_type,
                offset=pos,
            )
        yield Box(box_type, data, pos, pos + size, header_size)
        pos += size


def children(box: Box) -> Iterator[Box]:
    """The child boxes of a plain container box (moov, trak, moof, traf, ...)."""
    return iter_boxes(box.data, box.payload_start, box.end)


def find_child(box: Box, box_type: str) -> Box | None:
    for child in children(box):
        if child.type == box_type:
            return child
    return None


def make_box(box_type: str, payload: bytes) -> bytes:
    """Serialise one box (32-bit size)."""
    return struct.pack(">I4s", 8 + len(payload), box_type.encode("latin-1")) + payload


class FieldReader:
    """Big-endian field reader bounded by a box; reading past the box is :class:`MalformedBox`."""

    __slots__ = ("_box_type", "_data", "end", "pos")

    def __init__(self, data: bytes, start: int, end: int, box_type: str):
        self._data = data
        self.pos = start
        self.end = end
        self._box_type = box_type

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise MalformedBox(
                f"field of {n} bytes runs past the end of the box",
                box_type=self._box_type,
                offset=self.pos,
            )
        out = self._data[self.pos : self.pos + n]
        self.pos += n
        return out

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def skip(self, n: int) -> None:
        self._take(n)

    def bytes(self, n: int) -> bytes:
        return self._take(n)

    def u8(self) -> int:
        return self._take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self._take(2), "big")

    def u24(self) -> int:
        return int.from_bytes(self._take(3), "big")

    def u32(self) -> int:
        return int.from_bytes(self._take(4), "big")

    def i32(self) -> int:
        return int.from_bytes(self._take(4), "big", signed=True)

    def u64(self) -> int:
        return int.from_bytes(self._take(8), "big")

    def uint(self, size: int) -> int:
        return int.from_bytes(self._take(size), "big")

    def version_flags(self) -> tuple[int, int]:
        """Read a FullBox header: ``(version, flags)``."""
        value = self.u32()
        return value >> 24, value & 0xFFFFFF

    def fail(self, message: str) -> MalformedBox:
        return MalformedBox(message, box_type=self._box_type, offset=self.pos)
