"""FLV muxer and reader, and audio/video tag header parsing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from origin.rtmp import amf0
from origin.rtmp.errors import FlvFormatError
from origin.rtmp.flv import FlvMuxer, FlvReader, FlvTag, read_flv
from origin.rtmp.tags import MediaTag, TagType, parse_audio_header, parse_video_header


def test_header_and_tag_bytes() -> None:
    mux = FlvMuxer()
    assert mux.header() == b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"
    assert FlvMuxer().header(has_audio=False) == b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00"
    tag = MediaTag(TagType.VIDEO, 0x12345678, b"\x17\x01\x00\x00\x00")
    assert mux.tag(tag) == (
        b"\x09\x00\x00\x05\x34\x56\x78\x12\x00\x00\x00"
        + b"\x17\x01\x00\x00\x00"
        + struct.pack(">I", 16)
    )
    with pytest.raises(FlvFormatError):
        mux.header()
    with pytest.raises(FlvFormatError):
        FlvMuxer().tag(tag)


def test_round_trip_with_metadata_bytewise() -> None:
    mux = FlvMuxer()
    tags = [
        MediaTag(TagType.VIDEO, 0, b"\x17\x00\x00\x00\x00\x01"),
        MediaTag(TagType.AUDIO, 0, b"\xaf\x00\x12\x10"),
        MediaTag(TagType.VIDEO, 33, b"\x27\x01\x00\x00\x00abc"),
    ]
    blob = (
        mux.header()
        + mux.metadata({"width": 1280.0, "encoder": "x"})
        + b"".join(mux.tag(t) for t in tags)
    )
    assert mux.tags_written == 4
    header, parsed = read_flv(blob)
    assert header.has_audio and header.has_video and header.version == 1
    assert parsed[0].script() == ["onMetaData", amf0.EcmaArray({"width": 1280.0, "encoder": "x"})]
    assert [t.media() for t in parsed[1:]] == tags
    reader = FlvReader()
    got: list[FlvTag] = []
    for i in range(len(blob)):
        got += reader.receive_data(blob[i : i + 1])
    assert got == parsed and reader.buffered == 0


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (b"FLX\x01", "signature"),
        (b"FLV\x01\x05\x00\x00\x00\x05\x00\x00\x00\x00", "smaller than 9"),
        (b"FLV\x01\x05\x00\x00\x00\x09\x00\x00", "truncated FLV header"),
        (
            FlvMuxer().header() + b"\x09\x00\x00\x01" + bytes(7) + b"\x17" + struct.pack(">I", 99),
            "PreviousTagSize",
        ),
        (
            FlvMuxer().header() + b"\x29\x00\x00\x01" + bytes(7) + b"\x17" + struct.pack(">I", 12),
            "encrypted",
        ),
        (FlvMuxer().header() + b"\x09\x00\x00\x05" + bytes(7) + b"\x17", "truncated FLV tag"),
    ],
)
def test_malformed_files(blob: bytes, match: str) -> None:
    with pytest.raises(FlvFormatError, match=match):
        read_flv(blob)


def test_tag_size_limit_and_kind_checks() -> None:
    with pytest.raises(FlvFormatError, match="limit"):
        FlvReader(max_tag_size=10).receive_data(
            FlvMuxer().header() + b"\x09\x00\x01\x00" + bytes(7)
        )
    with pytest.raises(FlvFormatError):
        FlvTag(18, 0, b"").media()
    with pytest.raises(FlvFormatError):
        FlvTag(9, 0, b"").script()
    with pytest.raises(FlvFormatError, match="undecodable"):
        FlvTag(18, 0, b"\x02\x00\x05ab").script()
    mux = FlvMuxer()
    mux.header()
    with pytest.raises(FlvFormatError, match="24-bit"):
        mux.tag(MediaTag(TagType.VIDEO, 0, bytes(1 << 24)))


@given(st.binary(max_size=300))
def test_random_bytes_only_raise_flv_errors(data: bytes) -> None:
    try:
        FlvReader().receive_data(FlvMuxer().header() + data)
    except FlvFormatError:
        pass


def test_legacy_avc_and_aac_headers() -> None:
    seq = parse_video_header(b"\x17\x00\x00\x00\x00\x01")
    assert (seq.codec, seq.is_keyframe, seq.is_sequence_header, seq.header_size) == (
        "avc1",
        True,
        True,
        5,
    )
    inter = parse_video_header(b"\x27\x01\xff\xff\xfe")
    assert inter.composition_time == -2 and not inter.is_keyframe
    assert parse_video_header(b"\x52\x00").frame_type == 5  # command frame
    assert not parse_video_header(b"\x57\x00").is_sequence_header
    assert parse_video_header(b"\x22").codec == "h263"
    aac = parse_audio_header(b"\xaf\x00\x12\x10")
    assert (aac.codec, aac.is_sequence_header, aac.stereo, aac.sound_rate) == (
        "mp4a",
        True,
        True,
        3,
    )
    assert parse_audio_header(b"\x2f\xff").codec == "mp3"
    assert parse_audio_header(b"\x2f\xff").packet_type is None


def test_enhanced_rtmp_headers() -> None:
    hevc = parse_video_header(b"\x91hvc1\x00\x00\x10rest")  # keyframe, coded frames
    assert (
        hevc.codec,
        hevc.enhanced,
        hevc.is_keyframe,
        hevc.packet_type,
        hevc.composition_time,
        hevc.header_size,
    ) == ("hvc1", True, True, 1, 16, 8)
    av1 = parse_video_header(b"\x90av01conf")
    assert av1.is_sequence_header and av1.codec == "av01"
    assert parse_video_header(b"\xa3hvc1x").composition_time == 0  # CodedFramesX
    assert parse_video_header(b"\x96\x00").packet_type == 6
    opus = parse_audio_header(b"\x90Opus\x01")
    assert (opus.codec, opus.enhanced, opus.is_sequence_header) == ("Opus", True, True)


@pytest.mark.parametrize(
    "body", [b"", b"\x17\x00", b"\x91hv", b"\x91hvc1\x00", b"\x91\xff\xfe\xfd\xfc"]
)
def test_truncated_video_headers(body: bytes) -> None:
    with pytest.raises(FlvFormatError):
        parse_video_header(body)


@pytest.mark.parametrize("body", [b"", b"\xaf", b"\x90Op", b"\x90\xff\xfe\xfd\xfc"])
def test_truncated_audio_headers(body: bytes) -> None:
    with pytest.raises(FlvFormatError):
        parse_audio_header(body)


def test_media_tag_helpers() -> None:
    v = MediaTag(TagType.VIDEO, 0, b"\x17\x00\x00\x00\x00")
    a = MediaTag(TagType.AUDIO, 0, b"\xaf\x01")
    assert v.is_video and not v.is_audio and v.is_keyframe and v.is_sequence_header
    assert a.is_audio and not a.is_keyframe and not a.is_sequence_header
    with pytest.raises(FlvFormatError):
        v.audio_header()
    with pytest.raises(FlvFormatError):
        a.video_header()
    assert not MediaTag(TagType.SCRIPT, 0, b"").is_sequence_header


async def test_flv_sink_writes_header_after_metadata_and_drops_file_fields() -> None:
    from origin.rtmp import EndReason, FlvSink, PublishEnd

    chunks: list[bytes] = []
    ends: list[PublishEnd] = []

    async def write(data: bytes) -> None:
        chunks.append(data)

    async def on_end(end: PublishEnd) -> None:
        ends.append(end)

    sink = FlvSink(write, on_end=on_end)
    await sink.on_metadata({"width": 640.0, "videocodecid": 7.0, "duration": 3.0, "filesize": 0.0})
    assert chunks == []
    video = MediaTag(TagType.VIDEO, 0, b"\x17\x00\x00\x00\x00\x01")
    await sink.on_media(video)
    await sink.on_metadata({"width": 1280.0})
    await sink.on_media(MediaTag(TagType.VIDEO, 33, b"\x27\x01\x00\x00\x00x"))
    await sink.on_end(PublishEnd(EndReason.UNPUBLISHED))
    header, tags = read_flv(b"".join(chunks))
    assert (header.has_audio, header.has_video) == (False, True)
    assert tags[0].script() == ["onMetaData", amf0.EcmaArray({"width": 640.0, "videocodecid": 7.0})]
    assert [t.media() for t in tags[1:]] == [
        video,
        MediaTag(TagType.VIDEO, 33, b"\x27\x01\x00\x00\x00x"),
    ]
    assert sink.late_metadata == 1 and sink.bytes_written == len(b"".join(chunks))
    assert [e.reason for e in ends] == [EndReason.UNPUBLISHED]


async def test_flv_sink_without_metadata_announces_both_streams() -> None:
    from origin.rtmp import FlvSink

    chunks: list[bytes] = []

    async def write(data: bytes) -> None:
        chunks.append(data)

    sink = FlvSink(write)
    await sink.on_media(MediaTag(TagType.AUDIO, 0, b"\xaf\x00\x12\x10"))
    header, tags = read_flv(b"".join(chunks))
    assert header.has_audio and header.has_video and len(tags) == 1
