"""FLV audio/video tag bodies: what an RTMP audio (8) or video (9) message carries.

:class:`MediaTag` is the unit handed to ingest sinks and written by the FLV muxer.
Its header is parsed on demand: the legacy FLV layout (codec id in the low nibble,
AVC/AAC packet types) and Enhanced RTMP (``IsExHeader`` bit, FourCC: ``hvc1``,
``av01``, ``vp09``, ``avc1``; ``Opus``, ``fLaC``, ``ac-3``, ...).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from origin.rtmp.errors import FlvFormatError

__all__ = [
    "AudioTagHeader",
    "MediaTag",
    "TagType",
    "VideoTagHeader",
    "parse_audio_header",
    "parse_video_header",
]


class TagType(enum.IntEnum):
    AUDIO = 8
    VIDEO = 9
    SCRIPT = 18


_LEGACY_VIDEO: Final = {
    2: "h263",
    3: "screen",
    4: "vp6",
    5: "vp6a",
    6: "screen2",
    7: "avc1",
    12: "hvc1",
    13: "av01",
}
_LEGACY_AUDIO: Final = {
    0: "pcm",
    1: "adpcm",
    2: "mp3",
    3: "pcm_le",
    4: "nellymoser16",
    5: "nellymoser8",
    6: "nellymoser",
    7: "alaw",
    8: "ulaw",
    10: "mp4a",
    11: "speex",
    13: "Opus",
    14: "mp3_8k",
}
_VIDEO_KEY: Final = 1
_VIDEO_COMMAND: Final = 5
_AUDIO_EX_HEADER: Final = 9
_AUDIO_AAC: Final = 10


@dataclass(frozen=True, slots=True)
class VideoTagHeader:
    """Parsed first bytes of a video tag body.

    ``packet_type`` is the AVC/HEVC packet type for legacy tags (0 sequence header,
    1 NALU, 2 end of sequence) or the Enhanced RTMP VideoPacketType (0 sequence
    start, 1 coded frames, 2 sequence end, 3 coded frames without composition
    time, 4 metadata, 5 MPEG-2 TS sequence start, 6 multitrack, 7 mod-ex); ``None``
    for codecs without one. ``header_size`` is where the codec payload starts.
    """

    frame_type: int
    codec: str
    codec_id: int | None
    enhanced: bool
    packet_type: int | None
    composition_time: int
    header_size: int

    @property
    def is_keyframe(self) -> bool:
        return self.frame_type == _VIDEO_KEY

    @property
    def is_sequence_header(self) -> bool:
        return self.packet_type == 0 and self.frame_type != _VIDEO_COMMAND


@dataclass(frozen=True, slots=True)
class AudioTagHeader:
    """Parsed first bytes of an audio tag body (``packet_type``: AAC or Enhanced packet type)."""

    sound_format: int
    codec: str
    enhanced: bool
    sound_rate: int
    sound_size: int
    stereo: bool
    packet_type: int | None
    header_size: int

    @property
    def is_sequence_header(self) -> bool:
        return self.packet_type == 0


def _si24(raw: bytes) -> int:
    value = int.from_bytes(raw, "big")
    return value - (1 << 24) if value & 0x800000 else value


def parse_video_header(data: bytes) -> VideoTagHeader:
    if not data:
        raise FlvFormatError("empty video tag")
    first = data[0]
    if first & 0x80:
        frame_type = (first >> 4) & 0x07
        packet_type = first & 0x0F
        if packet_type == 6:  # multitrack: the FourCC layout depends on the track mode
            return VideoTagHeader(frame_type, "", None, True, packet_type, 0, 1)
        if len(data) < 5:
            raise FlvFormatError("enhanced video tag shorter than its FourCC")
        try:
            fourcc = data[1:5].decode("ascii")
        except UnicodeDecodeError as exc:
            raise FlvFormatError("enhanced video tag FourCC is not ASCII") from exc
        cts = 0
        size = 5
        if packet_type == 1 and fourcc in ("avc1", "hvc1"):
            if len(data) < 8:
                raise FlvFormatError("enhanced video tag without its composition time")
            cts = _si24(data[5:8])
            size = 8
        return VideoTagHeader(frame_type, fourcc, None, True, packet_type, cts, size)
    frame_type = first >> 4
    codec_id = first & 0x0F
    codec = _LEGACY_VIDEO.get(codec_id, f"flv-video-{codec_id}")
    if frame_type == _VIDEO_COMMAND:
        return VideoTagHeader(frame_type, codec, codec_id, False, None, 0, 1)
    if codec_id in (7, 12, 13):
        if len(data) < 5:
            raise FlvFormatError(f"{codec} video tag shorter than its 5-byte header")
        return VideoTagHeader(frame_type, codec, codec_id, False, data[1], _si24(data[2:5]), 5)
    return VideoTagHeader(frame_type, codec, codec_id, False, None, 0, 1)


def parse_audio_header(data: bytes) -> AudioTagHeader:
    if not data:
        raise FlvFormatError("empty audio tag")
    first = data[0]
    sound_format = first >> 4
    if sound_format == _AUDIO_EX_HEADER:
        if len(data) < 5:
            raise FlvFormatError("enhanced audio tag shorter than its FourCC")
        packet_type = first & 0x0F
        try:
            fourcc = data[1:5].decode("ascii")
        except UnicodeDecodeError as exc:
            raise FlvFormatError("enhanced audio tag FourCC is not ASCII") from exc
        return AudioTagHeader(sound_format, fourcc, True, 0, 0, False, packet_type, 5)
    rate, size, stereo = (first >> 2) & 0x03, (first >> 1) & 0x01, bool(first & 0x01)
    codec = _LEGACY_AUDIO.get(sound_format, f"flv-audio-{sound_format}")
    if sound_format == _AUDIO_AAC:
        if len(data) < 2:
            raise FlvFormatError("AAC audio tag without its packet type")
        return AudioTagHeader(sound_format, codec, False, rate, size, stereo, data[1], 2)
    return AudioTagHeader(sound_format, codec, False, rate, size, stereo, None, 1)


@dataclass(frozen=True, slots=True)
class MediaTag:
    """One FLV audio or video tag: type, timestamp (ms, 32-bit) and body bytes."""

    tag_type: TagType
    timestamp: int
    data: bytes

    @property
    def is_video(self) -> bool:
        return self.tag_type == TagType.VIDEO

    @property
    def is_audio(self) -> bool:
        return self.tag_type == TagType.AUDIO

    def video_header(self) -> VideoTagHeader:
        if self.tag_type != TagType.VIDEO:
            raise FlvFormatError(f"tag of type {self.tag_type.name} has no video header")
        return parse_video_header(self.data)

    def audio_header(self) -> AudioTagHeader:
        if self.tag_type != TagType.AUDIO:
            raise FlvFormatError(f"tag of type {self.tag_type.name} has no audio header")
        return parse_audio_header(self.data)

    @property
    def is_keyframe(self) -> bool:
        """A video keyframe (sequence headers count: they are sent with frame type 1)."""
        return self.tag_type == TagType.VIDEO and self.video_header().is_keyframe

    @property
    def is_sequence_header(self) -> bool:
        """AVC/HEVC decoder configuration or AAC AudioSpecificConfig (or Enhanced equivalents)."""
        if self.tag_type == TagType.VIDEO:
            return self.video_header().is_sequence_header
        if self.tag_type == TagType.AUDIO:
            return self.audio_header().is_sequence_header
        return False
