"""RTMP chunk stream: splitting messages into chunks and reassembling them, sans-I/O.

Follows the RTMP 1.0 specification, section 5.3, as ffmpeg and librtmp read it:

* basic header: fmt (2 bits) and chunk stream id in 1, 2 or 3 bytes;
* message header of type 0 (absolute timestamp, length, type, message stream id),
  1 (delta, length, type), 2 (delta) or 3 (nothing: everything from the previous
  chunk of the same chunk stream; "a type 3 chunk following a type 0 chunk uses
  the type 0 timestamp as its delta");
* extended timestamp (4 bytes) whenever the 24-bit field is 0xFFFFFF, repeated in
  the type 3 chunks that continue or repeat such a header;
* Set Chunk Size (1) and Abort (2) take effect inside :meth:`ChunkReader.receive_data`
  as soon as they complete, because the very next chunk depends on them.

Every limit (chunk size, message size, number of chunk streams, bytes buffered
for partial messages) raises :class:`~origin.rtmp.errors.LimitExceeded`; malformed
headers raise :class:`~origin.rtmp.errors.ChunkStreamError`. Short input is
never an error: the bytes wait for more.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

from origin.rtmp.errors import ChunkStreamError, LimitExceeded, RtmpUsageError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_CHUNK_SIZE_WIRE",
    "ChunkReader",
    "ChunkWriter",
    "MessageType",
    "RtmpMessage",
]

DEFAULT_CHUNK_SIZE: Final = 128
#: Largest chunk size the wire format can express (31 bits).
MAX_CHUNK_SIZE_WIRE: Final = 0x7FFFFFFF
_MAX_MESSAGE_LENGTH_WIRE: Final = 0xFFFFFF
_EXTENDED: Final = 0xFFFFFF
_U32: Final = struct.Struct(">I")
_U32_LE: Final = struct.Struct("<I")


class MessageType(enum.IntEnum):
    SET_CHUNK_SIZE = 1
    ABORT = 2
    ACKNOWLEDGEMENT = 3
    USER_CONTROL = 4
    WINDOW_ACK_SIZE = 5
    SET_PEER_BANDWIDTH = 6
    AUDIO = 8
    VIDEO = 9
    DATA_AMF3 = 15
    SHARED_OBJECT_AMF3 = 16
    COMMAND_AMF3 = 17
    DATA_AMF0 = 18
    SHARED_OBJECT_AMF0 = 19
    COMMAND_AMF0 = 20
    AGGREGATE = 22


@dataclass(frozen=True, slots=True)
class RtmpMessage:
    """One reassembled RTMP message. ``timestamp`` is in milliseconds, modulo 2**32."""

    type_id: int
    stream_id: int
    timestamp: int
    payload: bytes
    chunk_stream_id: int = 3


class _InState:
    __slots__ = (
        "extended",
        "has_header",
        "length",
        "partial",
        "stream_id",
        "timestamp",
        "ts_field",
        "type_id",
    )

    def __init__(self) -> None:
        self.has_header = False
        self.timestamp = 0
        self.ts_field = 0
        self.extended = False
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.partial: bytearray | None = None


class ChunkReader:
    """Reassembles messages from received chunk bytes."""

    __slots__ = (
        "_buf",
        "_max_buffered",
        "_max_chunk_size",
        "_max_message_size",
        "_max_streams",
        "_pending_bytes",
        "_reserved",
        "_streams",
        "bytes_received",
        "chunk_size",
    )

    def __init__(
        self,
        *,
        max_chunk_size: int = 0xFFFFFF,
        max_message_size: int = 8 << 20,
        max_chunk_streams: int = 64,
        max_buffered: int | None = None,
    ) -> None:
        if not 1 <= max_chunk_size <= MAX_CHUNK_SIZE_WIRE:
            raise RtmpUsageError(f"max_chunk_size {max_chunk_size} out of range")
        if not 1 <= max_message_size <= _MAX_MESSAGE_LENGTH_WIRE:
            raise RtmpUsageError(f"max_message_size {max_message_size} out of range")
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.bytes_received = 0
        self._max_chunk_size = max_chunk_size
        self._max_message_size = max_message_size
        self._max_streams = max_chunk_streams
        self._max_buffered = max_buffered if max_buffered is not None else 2 * max_message_size
        self._streams: dict[int, _InState] = {}
        self._buf = bytearray()
        self._pending_bytes = 0
        self._reserved = 0  # declared lengths of the messages being reassembled

    @property
    def buffered_bytes(self) -> int:
        """Bytes held: unparsed input plus partially reassembled messages."""
        return len(self._buf) + self._pending_bytes

    def receive_data(self, data: bytes) -> list[RtmpMessage]:
        """Consume bytes; return every message they complete, in order."""
        self.bytes_received += len(data)
        self._buf += data
        messages: list[RtmpMessage] = []
        pos = 0
        try:
            while True:
                consumed = self._parse_chunk(pos, messages)
                if consumed == 0:
                    break
                pos += consumed
        finally:
            del self._buf[:pos]
        return messages

    def _parse_chunk(self, start: int, out: list[RtmpMessage]) -> int:
        """Parse one chunk at ``start``; return bytes consumed, 0 if incomplete."""
        buf = self._buf
        avail = len(buf) - start
        if avail < 1:
            return 0
        first = buf[start]
        fmt = first >> 6
        csid = first & 0x3F
        pos = start + 1
        if csid == 0:
            if avail < 2:
                return 0
            csid = 64 + buf[pos]
            pos += 1
        elif csid == 1:
            if avail < 3:
                return 0
            csid = 64 + buf[pos] + (buf[pos + 1] << 8)
            pos += 2
        st = self._streams.get(csid)
        if st is None:
            if len(self._streams) >= self._max_streams:
                raise LimitExceeded(f"more than {self._max_streams} chunk streams in use")
            if fmt >= 2:
                raise ChunkStreamError(
                    f"chunk stream {csid} starts with a type-{fmt} header (no previous header)"
                )
            st = _InState()
        header_len = (11, 7, 3, 0)[fmt]
        if len(buf) - pos < header_len:
            return 0
        ts_field = st.ts_field
        length = st.length
        type_id = st.type_id
        stream_id = st.stream_id
        if fmt <= 2:
            ts_field = int.from_bytes(buf[pos : pos + 3], "big")
            if fmt <= 1:
                length = int.from_bytes(buf[pos + 3 : pos + 6], "big")
                type_id = buf[pos + 6]
                if fmt == 0:
                    stream_id = _U32_LE.unpack_from(buf, pos + 7)[0]
            pos += header_len
            extended = ts_field == _EXTENDED
        else:
            extended = st.extended
        if extended:
            if len(buf) - pos < 4:
                return 0
            ext_value = _U32.unpack_from(buf, pos)[0]
            pos += 4
            if fmt <= 2 or st.partial is None:
                ts_field = ext_value
        starts_message = st.partial is None
        if not starts_message and fmt != 3:
            raise ChunkStreamError(
                f"type-{fmt} header on chunk stream {csid} while a message is incomplete"
            )
        if starts_message and length > self._max_message_size:
            raise LimitExceeded(
                f"message of {length} bytes exceeds the limit of {self._max_message_size}"
            )
        have = 0 if st.partial is None else len(st.partial)
        take = min(self.chunk_size, length - have)
        if len(buf) - pos < take:
            return 0
        # The whole chunk is here: commit the header state.
        if csid not in self._streams:
            self._streams[csid] = st
        if starts_message:
            if fmt == 0:
                st.timestamp = ts_field
            elif not st.has_header:
                st.timestamp = ts_field  # type-1 start without history: treat the delta as absolute
            else:
                st.timestamp = (st.timestamp + ts_field) & 0xFFFFFFFF
            st.ts_field = ts_field
            st.extended = extended
            st.length = length
            st.type_id = type_id
            st.stream_id = stream_id
            st.has_header = True
            if self._reserved + length > self._max_buffered:
                raise LimitExceeded("partially received messages exceed the buffer limit")
            self._reserved += length
            st.partial = bytearray()
        partial = st.partial
        assert partial is not None
        partial += buf[pos : pos + take]
        self._pending_bytes += take
        pos += take
        if len(partial) == st.length:
            self._pending_bytes -= len(partial)
            self._reserved -= st.length
            st.partial = None
            msg = RtmpMessage(st.type_id, st.stream_id, st.timestamp, bytes(partial), csid)
            self._apply_control(msg)
            out.append(msg)
        return pos - start

    def _apply_control(self, msg: RtmpMessage) -> None:
        if msg.type_id == MessageType.SET_CHUNK_SIZE:
            if len(msg.payload) != 4:
                raise ChunkStreamError(f"Set Chunk Size payload of {len(msg.payload)} bytes")
            (size,) = _U32.unpack(msg.payload)
            if size & 0x80000000 or size == 0:
                raise ChunkStreamError(f"invalid chunk size {size}")
            # Every size above 0xFFFFFF is the same as 0xFFFFFF: no message is larger
            # (RTMP 1.0 section 5.4.1), so a sender may use any of them.
            size = min(size, _MAX_MESSAGE_LENGTH_WIRE)
            if size > self._max_chunk_size:
                raise LimitExceeded(
                    f"chunk size {size} exceeds the limit of {self._max_chunk_size}"
                )
            self.chunk_size = size
        elif msg.type_id == MessageType.ABORT:
            if len(msg.payload) != 4:
                raise ChunkStreamError(f"Abort payload of {len(msg.payload)} bytes")
            (csid,) = _U32.unpack(msg.payload)
            st = self._streams.get(csid)
            if st is not None and st.partial is not None:
                self._pending_bytes -= len(st.partial)
                self._reserved -= st.length
                st.partial = None


class _OutState:
    __slots__ = ("length", "stream_id", "timestamp", "ts_field", "type_id")

    def __init__(self, msg: RtmpMessage, ts_field: int) -> None:
        self.stream_id = msg.stream_id
        self.length = len(msg.payload)
        self.type_id = msg.type_id
        self.timestamp = msg.timestamp
        self.ts_field = ts_field


def _basic_header(fmt: int, csid: int) -> bytes:
    if 2 <= csid <= 63:
        return bytes([(fmt << 6) | csid])
    if 64 <= csid <= 319:
        return bytes([fmt << 6, csid - 64])
    if 320 <= csid <= 65599:
        rest = csid - 64
        return bytes([(fmt << 6) | 1, rest & 0xFF, rest >> 8])
    raise RtmpUsageError(f"chunk stream id {csid} out of range 2..65599")


class ChunkWriter:
    """Splits messages into chunks, compressing headers against the previous message."""

    __slots__ = ("_streams", "chunk_size")

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.chunk_size = chunk_size
        self._streams: dict[int, _OutState] = {}

    def set_chunk_size(self, size: int) -> bytes:
        """Return a Set Chunk Size message; chunks written after it use ``size``."""
        if not 1 <= size <= MAX_CHUNK_SIZE_WIRE:
            raise RtmpUsageError(f"chunk size {size} out of range")
        data = self.write(RtmpMessage(MessageType.SET_CHUNK_SIZE, 0, 0, _U32.pack(size), 2))
        self.chunk_size = size
        return data

    def write(self, msg: RtmpMessage, *, compress: bool = True) -> bytes:
        """Encode one message as chunks."""
        length = len(msg.payload)
        if length > _MAX_MESSAGE_LENGTH_WIRE:
            raise RtmpUsageError(f"message of {length} bytes is too long for RTMP")
        if not 0 <= msg.timestamp <= 0xFFFFFFFF:
            raise RtmpUsageError(f"timestamp {msg.timestamp} out of 32-bit range")
        csid = msg.chunk_stream_id
        prev = self._streams.get(csid) if compress else None
        fmt = 0
        ts_field = msg.timestamp
        if prev is not None and prev.stream_id == msg.stream_id and msg.timestamp >= prev.timestamp:
            ts_field = msg.timestamp - prev.timestamp
            if prev.length != length or prev.type_id != msg.type_id:
                fmt = 1
            elif ts_field != prev.ts_field:
                fmt = 2
            else:
                fmt = 3
        extended = ts_field >= _EXTENDED
        out = bytearray(_basic_header(fmt, csid))
        field24 = (_EXTENDED if extended else ts_field).to_bytes(3, "big")
        if fmt <= 2:
            out += field24
        if fmt <= 1:
            out += length.to_bytes(3, "big")
            out.append(msg.type_id)
        if fmt == 0:
            out += _U32_LE.pack(msg.stream_id)
        ext = _U32.pack(ts_field) if extended else b""
        out += ext
        payload = msg.payload
        out += payload[: self.chunk_size]
        continuation = _basic_header(3, csid) + ext
        for offset in range(self.chunk_size, length, self.chunk_size):
            out += continuation
            out += payload[offset : offset + self.chunk_size]
        self._streams[csid] = _OutState(msg, ts_field)
        return bytes(out)
