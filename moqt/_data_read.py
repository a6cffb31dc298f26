"""Low-level readers shared by the data-stream parsers.

The parsers must learn, when input runs short, exactly how many more bytes
the field being read needs: that lets them complete a partial object header
from the next chunk without ever copying payload bytes into a holding buffer.
``moqt._buffer.Buffer`` only says "need more data", so these readers raise
:class:`Short` carrying the absolute end position the failed read requires.
"""

from __future__ import annotations

from ._extensions import Extensions, decode_extensions
from .errors import LocalError, ProtocolViolation
from .types import ObjectStatus

__all__ = [
    "MAX_ID",
    "Short",
    "StreamParser",
    "read_extension_block",
    "read_status",
    "read_uint8",
    "read_varint",
]

MAX_ID = (1 << 62) - 1

Data = bytes | bytearray | memoryview


class Short(Exception):
    """Input ended inside a field; ``need`` is the position the read needs to reach."""

    __slots__ = ("need",)

    def __init__(self, need: int) -> None:
        self.need = need


def read_varint(data: Data, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise Short(pos + 1)
    first = data[pos]
    prefix = first >> 6
    if prefix == 0:
        return first, pos + 1
    size = 1 << prefix
    stop = pos + size
    if stop > end:
        raise Short(stop)
    value = first & 0x3F
    for i in range(pos + 1, stop):
        value = (value << 8) | data[i]
    return value, stop


def read_uint8(data: Data, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise Short(pos + 1)
    return data[pos], pos + 1


def read_extension_block(
    data: Data, pos: int, end: int, version: int, limit: int
) -> tuple[Extensions, int]:
    """``Extension Headers Length (i)`` then that many bytes of Key-Value-Pairs."""
    length, pos = read_varint(data, pos, end)
    if length > limit:
        raise ProtocolViolation(
            f"extension headers length {length} exceeds the limit of {limit} bytes"
        )
    stop = pos + length
    if stop > end:
        raise Short(stop)
    if length == 0:
        return (), stop
    return decode_extensions(memoryview(data)[pos:stop], version), stop


def read_status(
    data: Data, pos: int, end: int, allowed: frozenset[ObjectStatus]
) -> tuple[ObjectStatus, int]:
    raw, pos = read_varint(data, pos, end)
    for status in allowed:
        if status == raw:
            return status, pos
    raise ProtocolViolation(f"unknown object status {raw:#x}")


class StreamParser[E, H]:
    """Incremental framing shared by the subgroup and fetch stream parsers.

    Subclasses parse the stream header and each object's head (the fields
    before the payload) as pure functions of ``(data, pos, end)`` that raise
    :class:`Short` when input runs out. This class drives them over arbitrary
    chunking: a head cut by a chunk boundary is completed in ``_pending`` by
    copying only the bytes the failed field needs; a payload cut by a chunk
    boundary is kept as zero-copy slices of the fed chunks and joined once.
    At most one partial object is ever held.
    """

    __slots__ = ("_dead", "_have_header", "_parts", "_pending", "_remaining")

    def __init__(self) -> None:
        self._pending = bytearray()
        self._parts: list[memoryview] = []
        self._remaining = 0
        self._have_header = False
        self._dead = False

    # -- subclass hooks ---------------------------------------------------------------
    def _parse_header(self, data: Data, pos: int, end: int) -> tuple[E, int]:
        raise NotImplementedError

    def _parse_head(self, data: Data, pos: int, end: int) -> tuple[H, int]:
        raise NotImplementedError

    def _begin_object(self, head: H, payload_length: int) -> None:
        """Validate and record ``head``; the payload (``payload_length`` bytes) follows."""
        raise NotImplementedError

    def _payload_length(self, head: H) -> int:
        raise NotImplementedError

    def _end_object(self, payload: bytes) -> E:
        raise NotImplementedError

    # -- driver -----------------------------------------------------------------------
    def feed(self, data: bytes) -> list[E]:
        """Consume the next chunk of the stream; return the events it completed.

        Pass ``bytes`` for zero-copy payload slicing (other buffers are copied once).
        Raises a :class:`~moqt.errors.PeerError` subclass on malformed input; the
        parser is unusable afterwards.
        """
        if self._dead:
            raise LocalError("feed() on a parser that already failed or finished")
        if type(data) is not bytes:
            data = bytes(data)
        events: list[E] = []
        try:
            self._run(data, events)
        except BaseException:
            self._dead = True
            raise
        return events

    def finish(self) -> None:
        """The stream ended with FIN: reject a truncated header or object."""
        if self._dead:
            raise LocalError("finish() on a parser that already failed or finished")
        self._dead = True
        if not self._have_header:
            raise ProtocolViolation("stream ended (FIN) before its header was complete")
        if self._remaining or self._pending:
            raise ProtocolViolation("stream ended (FIN) in the middle of an object")

    @property
    def mid_object(self) -> bool:
        """True while part of an object (head or payload) has been consumed."""
        return bool(self._remaining or (self._pending and self._have_header))

    def _run(self, data: bytes, events: list[E]) -> None:
        pos = 0
        end = len(data)
        pending = self._pending
        if not self._have_header:
            if pending:
                while True:
                    try:
                        header, _ = self._parse_header(pending, 0, len(pending))
                        break
                    except Short as short:
                        if pos >= end:
                            return
                        take = min(short.need - len(pending), end - pos)
                        pending += memoryview(data)[pos : pos + take]
                        pos += take
                pending.clear()
            else:
                try:
                    header, pos = self._parse_header(data, pos, end)
                except Short:
                    pending += memoryview(data)[pos:end]
                    return
            self._have_header = True
            events.append(header)
        while pos < end:
            remaining = self._remaining
            if remaining:
                take = min(remaining, end - pos)
                if take == remaining and not self._parts:
                    # the whole payload is in this chunk: one slice (none if it is the chunk)
                    payload = data[pos : pos + take]
                else:
                    self._parts.append(memoryview(data)[pos : pos + take])
                    payload = b"" if take < remaining else b"".join(self._parts)
                pos += take
                remaining -= take
                self._remaining = remaining
                if not remaining:
                    self._parts = []
                    events.append(self._end_object(payload))
                continue
            if pending:
                while True:
                    try:
                        head, _ = self._parse_head(pending, 0, len(pending))
                        break
                    except Short as short:
                        if pos >= end:
                            return
                        take = min(short.need - len(pending), end - pos)
                        pending += memoryview(data)[pos : pos + take]
                        pos += take
                pending.clear()
            else:
                try:
                    head, pos = self._parse_head(data, pos, end)
                except Short:
                    pending += memoryview(data)[pos:end]
                    return
            length = self._payload_length(head)
            self._begin_object(head, length)
            if end - pos >= length:
                events.append(self._end_object(data[pos : pos + length]))
                pos += length
            else:
                if pos < end:
                    self._parts.append(memoryview(data)[pos:end])
                self._remaining = length - (end - pos)
                return
