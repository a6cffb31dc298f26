"""Byte buffers and QUIC variable-length integers (RFC 9000, section 16).

Reading never blocks and never guesses: a read past the end raises
:class:`NeedMoreData`, which callers treat as "wait for more bytes", never as a
protocol error. Malformed values raise :class:`~moqt.errors.ProtocolViolation`.
"""

from __future__ import annotations

from .errors import ProtocolViolation

__all__ = [
    "MAX_VARINT",
    "Buffer",
    "NeedMoreData",
    "Writer",
    "encode_varint",
    "varint_size",
]

MAX_VARINT = (1 << 62) - 1


class NeedMoreData(Exception):
    """The input ended before a complete value; feed more bytes and retry."""


def varint_size(value: int) -> int:
    if value < 0 or value > MAX_VARINT:
        raise ValueError(f"varint out of range: {value}")
    if value < 0x40:
        return 1
    if value < 0x4000:
        return 2
    if value < 0x4000_0000:
        return 4
    return 8


def encode_varint(value: int) -> bytes:
    size = varint_size(value)
    if size == 1:
        return bytes((value,))
    if size == 2:
        return (value | 0x4000).to_bytes(2, "big")
    if size == 4:
        return (value | 0x8000_0000).to_bytes(4, "big")
    return (value | 0xC000_0000_0000_0000).to_bytes(8, "big")


class Buffer:
    """A read cursor over immutable bytes."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(
        self, data: bytes | bytearray | memoryview, start: int = 0, end: int | None = None
    ):
        self._data = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        self._pos = start
        self._end = len(data) if end is None else end

    @property
    def position(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def eof(self) -> bool:
        return self._pos >= self._end

    def _take(self, n: int) -> memoryview:
        if n < 0:
            raise ProtocolViolation("negative length")
        if self._end - self._pos < n:
            raise NeedMoreData
        view = self._data[self._pos : self._pos + n]
        self._pos += n
        return view

    def pull_bytes(self, n: int) -> bytes:
        return bytes(self._take(n))

    def pull_uint8(self) -> int:
        if self._pos >= self._end:
            raise NeedMoreData
        value = self._data[self._pos]
        self._pos += 1
        return value

    def pull_uint16(self) -> int:
        return int.from_bytes(self._take(2), "big")

    def pull_varint(self) -> int:
        if self._pos >= self._end:
            raise NeedMoreData
        first = self._data[self._pos]
        size = 1 << (first >> 6)
        raw = self._take(size)
        value = first & 0x3F
        for b in raw[1:]:
            value = (value << 8) | b
        return value

    def pull_length_prefixed(self) -> bytes:
        """A varint length followed by that many bytes."""
        return self.pull_bytes(self.pull_varint())

    def sub_buffer(self, n: int) -> Buffer:
        """A buffer over the next ``n`` bytes, advancing this one past them."""
        if self._end - self._pos < n:
            raise NeedMoreData
        sub = Buffer(self._data, self._pos, self._pos + n)
        self._pos += n
        return sub

    def rest(self) -> bytes:
        return self.pull_bytes(self._end - self._pos)


class Writer:
    """An append-only byte builder."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def __len__(self) -> int:
        return len(self._buf)

    @property
    def data(self) -> bytes:
        return bytes(self._buf)

    def push_bytes(self, data: bytes | bytearray | memoryview) -> Writer:
        self._buf += data
        return self

    def push_uint8(self, value: int) -> Writer:
        if not 0 <= value <= 0xFF:
            raise ValueError(f"uint8 out of range: {value}")
        self._buf.append(value)
        return self

    def push_uint16(self, value: int) -> Writer:
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"uint16 out of range: {value}")
        self._buf += value.to_bytes(2, "big")
        return self

    def push_varint(self, value: int) -> Writer:
        self._buf += encode_varint(value)
        return self

    def push_length_prefixed(self, data: bytes | bytearray | memoryview) -> Writer:
        self.push_varint(len(data))
        self._buf += data
        return self
