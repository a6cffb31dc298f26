"""FLV muxing and parsing, sans-I/O.

:class:`FlvMuxer` turns what an RTMP publisher sent (metadata and audio/video
tags) back into an FLV byte stream: header, ``PreviousTagSize0``, then
``tag header + body + PreviousTagSize`` per tag, with the metadata as an
``onMetaData`` script tag. That stream is what ``ffmpeg -f flv -i pipe:0`` reads.

:class:`FlvReader` parses an FLV byte stream incrementally (short input waits
for more; malformed input raises :class:`~origin.rtmp.errors.FlvFormatError`).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from origin.rtmp import amf0
from origin.rtmp.amf0 import AmfValue, EcmaArray
from origin.rtmp.errors import AmfDecodeError, FlvFormatError
from origin.rtmp.tags import MediaTag, TagType

__all__ = [
    "FLV_HEADER_SIZE",
    "MAX_TAG_SIZE",
    "FlvHeader",
    "FlvMuxer",
    "FlvReader",
    "FlvTag",
    "read_flv",
]

FLV_HEADER_SIZE: Final = 9
_TAG_HEADER_SIZE: Final = 11
_FLAG_AUDIO: Final = 0x04
_FLAG_VIDEO: Final = 0x01
_U32: Final = struct.Struct(">I")
#: Largest tag body the 24-bit size field can carry.
MAX_TAG_SIZE: Final = 0xFFFFFF


@dataclass(frozen=True, slots=True)
class FlvHeader:
    version: int
    has_audio: bool
    has_video: bool


@dataclass(frozen=True, slots=True)
class FlvTag:
    """One FLV tag as stored in a file (audio, video or script data)."""

    tag_type: int
    timestamp: int
    data: bytes

    def media(self) -> MediaTag:
        if self.tag_type not in (TagType.AUDIO, TagType.VIDEO):
            raise FlvFormatError(f"tag type {self.tag_type} is not audio or video")
        return MediaTag(TagType(self.tag_type), self.timestamp, self.data)

    def script(self) -> list[AmfValue]:
        if self.tag_type != TagType.SCRIPT:
            raise FlvFormatError(f"tag type {self.tag_type} is not script data")
        try:
            return amf0.decode_all(self.data)
        except AmfDecodeError as exc:
            raise FlvFormatError(f"undecodable script tag: {exc}") from exc


def _tag_bytes(tag_type: int, timestamp: int, body: bytes) -> bytes:
    if len(body) > MAX_TAG_SIZE:
        raise FlvFormatError(f"tag body of {len(body)} bytes does not fit FLV's 24-bit size")
    ts = timestamp & 0xFFFFFFFF
    header = (
        bytes([tag_type])
        + len(body).to_bytes(3, "big")
        + (ts & 0xFFFFFF).to_bytes(3, "big")
        + bytes([ts >> 24])
        + b"\x00\x00\x00"
    )
    return header + body + _U32.pack(_TAG_HEADER_SIZE + len(body))


class FlvMuxer:
    """Builds an FLV byte stream piece by piece; every method returns the bytes to write."""

    __slots__ = ("_started", "tags_written")

    def __init__(self) -> None:
        self._started = False
        self.tags_written = 0

    def header(self, *, has_audio: bool = True, has_video: bool = True) -> bytes:
        """The 9-byte FLV header plus ``PreviousTagSize0``; call once, first."""
        if self._started:
            raise FlvFormatError("FLV header already written")
        self._started = True
        flags = (_FLAG_AUDIO if has_audio else 0) | (_FLAG_VIDEO if has_video else 0)
        return b"FLV\x01" + bytes([flags]) + _U32.pack(FLV_HEADER_SIZE) + _U32.pack(0)

    def _require_header(self) -> None:
        if not self._started:
            raise FlvFormatError("write the FLV header first")

    def metadata(self, metadata: Mapping[str, AmfValue], timestamp: int = 0) -> bytes:
        """An ``onMetaData`` script tag (the mapping becomes an ECMA array)."""
        self._require_header()
        body = amf0.encode_all(["onMetaData", EcmaArray(metadata)])
        self.tags_written += 1
        return _tag_bytes(TagType.SCRIPT, timestamp, body)

    def tag(self, tag: MediaTag) -> bytes:
        self._require_header()
        self.tags_written += 1
        return _tag_bytes(tag.tag_type, tag.timestamp, tag.data)


class FlvReader:
    """Incremental FLV parser: ``receive_data`` returns the complete tags seen so far."""

    __slots__ = ("_buf", "_max_tag_size", "header")

    def __init__(self, *, max_tag_size: int = MAX_TAG_SIZE) -> None:
        self._buf = bytearray()
        self._max_tag_size = max_tag_size
        self.header: FlvHeader | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def receive_data(self, data: bytes) -> list[FlvTag]:
        self._buf += data
        tags: list[FlvTag] = []
        pos = 0
        buf = self._buf
        if self.header is None:
            if len(buf) >= 3 and buf[:3] != b"FLV":
                raise FlvFormatError("not an FLV stream (signature is not 'FLV')")
            if len(buf) < FLV_HEADER_SIZE + 4:
                return tags
            version, flags = buf[3], buf[4]
            (offset,) = _U32.unpack_from(buf, 5)
            if offset < FLV_HEADER_SIZE:
                raise FlvFormatError(f"FLV header size {offset} is smaller than 9")
            if len(buf) < offset + 4:
                return tags
            self.header = FlvHeader(version, bool(flags & _FLAG_AUDIO), bool(flags & _FLAG_VIDEO))
            pos = offset + 4  # skip PreviousTagSize0
        while len(buf) - pos >= _TAG_HEADER_SIZE:
            first = buf[pos]
            if first & 0x20:
                raise FlvFormatError("encrypted FLV tags are not supported")
            tag_type = first & 0x1F
            size = int.from_bytes(buf[pos + 1 : pos + 4], "big")
            if size > self._max_tag_size:
                raise FlvFormatError(f"FLV tag of {size} bytes exceeds the limit")
            end = pos + _TAG_HEADER_SIZE + size
            if len(buf) < end + 4:
                break
            ts = int.from_bytes(buf[pos + 4 : pos + 7], "big") | (buf[pos + 7] << 24)
            (prev_size,) = _U32.unpack_from(buf, end)
            if prev_size != _TAG_HEADER_SIZE + size:
                raise FlvFormatError(
                    f"PreviousTagSize {prev_size} does not match the tag ({_TAG_HEADER_SIZE + size})"
                )
            tags.append(FlvTag(tag_type, ts, bytes(buf[pos + _TAG_HEADER_SIZE : end])))
            pos = end + 4
        del buf[:pos]
        return tags


def read_flv(data: bytes) -> tuple[FlvHeader, list[FlvTag]]:
    """Parse a whole FLV file; trailing partial tags are an error."""
    reader = FlvReader()
    tags = reader.receive_data(data)
    if reader.header is None:
        raise FlvFormatError("truncated FLV header")
    if reader.buffered:
        raise FlvFormatError(f"{reader.buffered} trailing bytes: truncated FLV tag")
    return reader.header, tags
