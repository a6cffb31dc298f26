"""Codec strings (RFC 6381 / WebCodecs registry) from ISO-BMFF sample entries.

Supported: AVC (avc1/avc3 + avcC), HEVC (hvc1/hev1 + hvcC), AV1 (av01 + av1C),
VP9 (vp09 + vpcC), AAC and other MPEG-4 audio (mp4a + esds), Opus (Opus + dOps).
"""

from __future__ import annotations

from dataclasses import dataclass

from ._boxes import Box, FieldReader, iter_boxes
from .errors import MalformedBox

__all__ = ["SampleEntryInfo", "parse_sample_entry"]

_VISUAL = frozenset({"avc1", "avc3", "hvc1", "hev1", "av01", "vp08", "vp09", "encv"})
_AUDIO = frozenset({"mp4a", "Opus", "fLaC", "ac-3", "ec-3", "enca"})

# MPEG-4 audio samplingFrequencyIndex table (ISO/IEC 14496-3 1.6.3.4).
_AAC_RATES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
    7350,
)


@dataclass(frozen=True, slots=True)
class SampleEntryInfo:
    """What a sample entry says about the coded media."""

    fourcc: str
    codec: str
    width: int | None = None
    height: int | None = None
    sample_rate: int | None = None
    channel_count: int | None = None


def parse_sample_entry(entry: Box) -> SampleEntryInfo:
    """Decode one sample entry box (a child of ``stsd``)."""
    r = entry.reader()
    r.skip(6)  # reserved
    r.u16()  # data_reference_index
    if entry.type in _VISUAL:
        r.skip(16)  # pre_defined, reserved, pre_defined[3]
        width, height = r.u16(), r.u16()
        r.skip(50)  # resolutions, reserved, frame_count, compressorname, depth, pre_defined
        codec = entry.type
        for child in _entry_children(entry, r.pos):
            if child.type == "avcC":
                codec = _avc_codec(entry.type, child)
            elif child.type == "hvcC":
                codec = _hevc_codec(entry.type, child)
            elif child.type == "av1C":
                codec = _av1_codec(child)
            elif child.type == "vpcC":
                codec = _vp9_codec(entry.type, child)
        return SampleEntryInfo(entry.type, codec, width=width, height=height)
    if entry.type in _AUDIO:
        version = r.u16()
        r.skip(6)  # revision level, vendor (QuickTime) / reserved (ISO)
        channels = r.u16()
        r.u16()  # samplesize
        r.skip(4)  # pre_defined, reserved
        sample_rate = r.u32() >> 16
        if version == 1:
            r.skip(16)
        elif version == 2:
            r.skip(36)
        codec = entry.type.lower() if entry.type == "Opus" else entry.type
        for child in _entry_children(entry, r.pos):
            if child.type == "esds":
                codec, asc_rate, asc_channels = _esds_codec(child)
                sample_rate = asc_rate or sample_rate
                channels = asc_channels or channels
            elif child.type == "dOps":
                dr = child.reader()
                dr.u8()  # version
                channels = dr.u8()
                sample_rate = 48000  # Opus always decodes at 48 kHz (RFC 7845 5.1)
        return SampleEntryInfo(entry.type, codec, sample_rate=sample_rate, channel_count=channels)
    return SampleEntryInfo(entry.type, entry.type)


def _entry_children(entry: Box, pos: int) -> list[Box]:
    """The boxes after a sample entry's fixed fields (codec configuration, btrt, ...)."""
    return list(iter_boxes(entry.data, pos, entry.end))


def _avc_codec(fourcc: str, avcc: Box) -> str:
    r = avcc.reader()
    if r.u8() != 1:
        raise r.fail("avcC configurationVersion is not 1")
    profile, compat, level = r.u8(), r.u8(), r.u8()
    return f"{fourcc}.{profile:02x}{compat:02x}{level:02x}"


def _hevc_codec(fourcc: str, hvcc: Box) -> str:
    r = hvcc.reader()
    if r.u8() != 1:
        raise r.fail("hvcC configurationVersion is not 1")
    b = r.u8()
    space, tier, profile = b >> 6, (b >> 5) & 1, b & 0x1F
    compat = r.u32()
    constraints = r.bytes(6)
    level = r.u8()
    reversed_compat = int(f"{compat:032b}"[::-1], 2)
    parts = [
        fourcc,
        ("", "A", "B", "C")[space] + str(profile),
        f"{reversed_compat:X}",
        ("H" if tier else "L") + str(level),
    ]
    trimmed = constraints.rstrip(b"\x00")
    parts.extend(f"{c:X}" for c in trimmed)
    return ".".join(parts)


def _av1_codec(av1c: Box) -> str:
    r = av1c.reader()
    marker = r.u8()
    if marker & 0x80 == 0:
        raise r.fail("av1C marker bit is not set")
    b1, b2 = r.u8(), r.u8()
    profile, level = b1 >> 5, b1 & 0x1F
    tier = "H" if b2 & 0x80 else "M"
    high_bitdepth, twelve_bit = (b2 >> 6) & 1, (b2 >> 5) & 1
    depth = 12 if (high_bitdepth and twelve_bit and profile == 2) else (10 if high_bitdepth else 8)
    return f"av01.{profile}.{level:02d}{tier}.{depth:02d}"


def _vp9_codec(fourcc: str, vpcc: Box) -> str:
    r = vpcc.reader(full_box=True)
    profile, level = r.u8(), r.u8()
    depth = r.u8() >> 4
    return f"{fourcc}.{profile:02d}.{level:02d}.{depth:02d}"


def _descriptor(r: FieldReader) -> tuple[int, int]:
    """Read an MPEG-4 descriptor tag and its expandable length."""
    tag = r.u8()
    length = 0
    for _ in range(4):
        b = r.u8()
        length = (length << 7) | (b & 0x7F)
        if not b & 0x80:
            break
    if length > r.remaining:
        raise r.fail(f"descriptor 0x{tag:02x} of {length} bytes overruns esds")
    return tag, length


def _esds_codec(esds: Box) -> tuple[str, int | None, int | None]:
    """``(codec, sample_rate, channels)`` from an esds box; rate/channels from the AudioSpecificConfig."""
    r = esds.reader(full_box=True)
    tag, _ = _descriptor(r)
    if tag != 0x03:
        raise r.fail("esds does not start with an ES_Descriptor")
    r.u16()  # ES_ID
    flags = r.u8()
    if flags & 0x80:
        r.u16()  # dependsOn_ES_ID
    if flags & 0x40:
        r.skip(r.u8())  # URL
    if flags & 0x20:
        r.u16()  # OCR_ES_Id
    tag, _ = _descriptor(r)
    if tag != 0x04:
        raise r.fail("ES_Descriptor lacks a DecoderConfigDescriptor")
    oti = r.u8()
    r.skip(12)  # streamType/upStream/reserved, bufferSizeDB, maxBitrate, avgBitrate
    if oti != 0x40:
        return f"mp4a.{oti:02x}", None, None
    if r.remaining == 0:
        return "mp4a.40", None, None
    tag, length = _descriptor(r)
    if tag != 0x05 or length < 2:
        return "mp4a.40", None, None
    asc = int.from_bytes(r.bytes(length), "big")
    bits = length * 8

    def take(n: int) -> int:
        nonlocal bits
        if bits < n:
            raise MalformedBox("AudioSpecificConfig is truncated", box_type="esds")
        bits -= n
        return (asc >> bits) & ((1 << n) - 1)

    aot = take(5)
    if aot == 31:
        aot = 32 + take(6)
    index = take(4)
    rate: int | None = (
        take(24) if index == 0xF else (_AAC_RATES[index] if index < len(_AAC_RATES) else None)
    )
    channels = take(4) or None
    return f"mp4a.40.{aot}", rate, channels
