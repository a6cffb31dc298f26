"""Chunk stream reader and writer: known bytes, header compression, limits, fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from origin.rtmp.chunk import ChunkReader, ChunkWriter, MessageType, RtmpMessage
from origin.rtmp.errors import ChunkStreamError, LimitExceeded, RtmpPeerError, RtmpUsageError


def feed_bytewise(reader: ChunkReader, data: bytes) -> list[RtmpMessage]:
    out: list[RtmpMessage] = []
    for i in range(len(data)):
        out += reader.receive_data(data[i : i + 1])
    return out


def fmt0(csid: int, ts: int, length: int, type_id: int, sid: int) -> bytes:
    return (
        bytes([csid])
        + ts.to_bytes(3, "big")
        + length.to_bytes(3, "big")
        + bytes([type_id])
        + struct.pack("<I", sid)
    )


def test_single_chunk_message_known_bytes() -> None:
    msg = RtmpMessage(MessageType.COMMAND_AMF0, 0, 0, b"\x05", 3)
    wire = ChunkWriter().write(msg)
    assert wire == fmt0(3, 0, 1, 20, 0) + b"\x05"
    assert ChunkReader().receive_data(wire) == [msg]


def test_long_message_is_split_with_type3_continuations() -> None:
    payload = bytes(range(256)) + bytes(44)
    msg = RtmpMessage(MessageType.VIDEO, 1, 40, payload, 6)
    wire = ChunkWriter().write(msg)
    assert wire == (
        fmt0(6, 40, 300, 9, 1)
        + payload[:128]
        + b"\xc6"
        + payload[128:256]
        + b"\xc6"
        + payload[256:]
    )
    assert feed_bytewise(ChunkReader(), wire) == [msg]


@pytest.mark.parametrize(
    ("csid", "basic"),
    [
        (2, b"\x02"),
        (63, b"\x3f"),
        (64, b"\x00\x00"),
        (319, b"\x00\xff"),
        (320, b"\x01\x00\x01"),
        (65599, b"\x01\xff\xff"),
    ],
)
def test_chunk_stream_id_encodings(csid: int, basic: bytes) -> None:
    msg = RtmpMessage(8, 1, 0, b"\xaf\x01", csid)
    wire = ChunkWriter().write(msg)
    assert wire.startswith(basic)
    assert ChunkReader().receive_data(wire) == [msg]


def test_writer_rejects_out_of_range_values() -> None:
    with pytest.raises(RtmpUsageError):
        ChunkWriter().write(RtmpMessage(8, 1, 0, b"", 1))
    with pytest.raises(RtmpUsageError):
        ChunkWriter().write(RtmpMessage(8, 1, 1 << 32, b""))
    with pytest.raises(RtmpUsageError):
        ChunkWriter().set_chunk_size(0)


def test_header_compression_types_1_2_3() -> None:
    w = ChunkWriter()
    msgs = [
        RtmpMessage(8, 1, 1000, b"aa", 4),
        RtmpMessage(8, 1, 1020, b"bbb", 4),
        RtmpMessage(8, 1, 1050, b"ccc", 4),
        RtmpMessage(8, 1, 1080, b"ddd", 4),
    ]
    wires = [w.write(m) for m in msgs]
    assert [x[0] >> 6 for x in wires] == [0, 1, 2, 3]
    assert wires[3] == b"\xc4ddd"
    assert ChunkReader().receive_data(b"".join(wires)) == msgs


def test_type3_after_type0_reuses_the_type0_timestamp_as_delta() -> None:
    # RTMP spec 5.3.1.2.4, and what ffmpeg writes/reads.
    wire = fmt0(4, 100, 1, 8, 1) + b"a" + b"\xc4" + b"b"
    got = ChunkReader().receive_data(wire)
    assert [(m.timestamp, m.payload) for m in got] == [(100, b"a"), (200, b"b")]


def test_extended_timestamps_including_type3_continuations() -> None:
    big = 0x01234567
    payload = bytes(300)
    msg = RtmpMessage(9, 1, big, payload, 6)
    wire = ChunkWriter().write(msg)
    ext = struct.pack(">I", big)
    assert wire[1:4] == b"\xff\xff\xff"
    assert wire == (
        fmt0(6, 0xFFFFFF, 300, 9, 1)
        + ext
        + payload[:128]
        + b"\xc6"
        + ext
        + payload[128:256]
        + b"\xc6"
        + ext
        + payload[256:]
    )
    assert feed_bytewise(ChunkReader(), wire) == [msg]
    # A delta that needs the extended field too.
    w = ChunkWriter()
    msgs = [RtmpMessage(9, 1, 5, b"x", 6), RtmpMessage(9, 1, 5 + 0x1000000, b"yy", 6)]
    assert ChunkReader().receive_data(b"".join(w.write(m) for m in msgs)) == msgs


def test_timestamps_wrap_at_32_bits() -> None:
    wire = fmt0(4, 0xFFFFFF, 1, 8, 1) + struct.pack(">I", 0xFFFFFFF0) + b"a"
    wire += bytes([0x84]) + (0x20).to_bytes(3, "big") + b"b"
    got = ChunkReader().receive_data(wire)
    assert [m.timestamp for m in got] == [0xFFFFFFF0, 0x10]


def test_set_chunk_size_applies_to_the_next_chunk_in_the_same_read() -> None:
    w = ChunkWriter()
    wire = w.set_chunk_size(4096)
    payload = bytes(range(256)) * 10
    wire += w.write(RtmpMessage(9, 1, 0, payload, 6))
    r = ChunkReader()
    got = r.receive_data(wire)
    assert r.chunk_size == 4096
    assert got[0].type_id == MessageType.SET_CHUNK_SIZE
    assert got[1].payload == payload


def test_abort_discards_the_partial_message() -> None:
    w = ChunkWriter()
    full = w.write(RtmpMessage(9, 1, 0, bytes(300), 6))
    partial = full[: 12 + 128]  # first chunk only
    abort = ChunkWriter().write(RtmpMessage(MessageType.ABORT, 0, 0, struct.pack(">I", 6), 2))
    fresh = ChunkWriter().write(RtmpMessage(9, 1, 33, b"new", 6))
    r = ChunkReader()
    got = r.receive_data(partial + abort + fresh)
    assert [m.type_id for m in got] == [MessageType.ABORT, 9]
    assert got[1].payload == b"new"
    assert r.buffered_bytes == 0


def test_zero_length_message() -> None:
    msg = RtmpMessage(18, 1, 7, b"", 5)
    assert ChunkReader().receive_data(ChunkWriter().write(msg)) == [msg]


def test_type1_start_without_history_is_accepted_as_absolute() -> None:
    wire = bytes([0x44]) + (50).to_bytes(3, "big") + (1).to_bytes(3, "big") + b"\x08a"
    (msg,) = ChunkReader().receive_data(wire)
    assert (msg.timestamp, msg.stream_id, msg.payload) == (50, 0, b"a")


@pytest.mark.parametrize(
    ("wire", "error", "match"),
    [
        (b"\x84" + bytes(10), ChunkStreamError, "type-2"),
        (b"\xc4" + bytes(10), ChunkStreamError, "type-3"),
        (
            fmt0(4, 0, 300, 9, 1) + bytes(128) + fmt0(4, 0, 1, 9, 1) + b"x",
            ChunkStreamError,
            "incomplete",
        ),
        (fmt0(2, 0, 4, 1, 0) + struct.pack(">I", 0), ChunkStreamError, "invalid chunk size"),
        (fmt0(2, 0, 4, 1, 0) + struct.pack(">I", 0x80000010), ChunkStreamError, "invalid"),
        (fmt0(2, 0, 3, 1, 0) + b"\x00\x00\x01", ChunkStreamError, "payload of 3"),
        (fmt0(2, 0, 2, 2, 0) + b"\x00\x00", ChunkStreamError, "Abort payload"),
        (fmt0(2, 0, 4, 1, 0) + struct.pack(">I", 1 << 20), LimitExceeded, "chunk size"),
        (fmt0(6, 0, 70000, 9, 1), LimitExceeded, "70000"),
    ],
)
def test_malformed_and_oversize_input(wire: bytes, error: type[Exception], match: str) -> None:
    r = ChunkReader(max_chunk_size=65536, max_message_size=65536)
    with pytest.raises(error, match=match):
        r.receive_data(wire)


def test_chunk_stream_count_and_buffer_limits() -> None:
    r = ChunkReader(max_chunk_streams=3)
    with pytest.raises(LimitExceeded, match="chunk streams"):
        for csid in range(3, 10):
            r.receive_data(fmt0(csid, 0, 1, 8, 1) + b"a")
    # Many partial messages on different chunk streams: bounded in total.
    r = ChunkReader(max_message_size=1000, max_buffered=2500)
    with pytest.raises(LimitExceeded, match="buffer limit"):
        for csid in range(3, 10):
            r.receive_data(fmt0(csid, 0, 1000, 9, 1) + bytes(128))


def test_reader_limits_must_be_sane() -> None:
    with pytest.raises(RtmpUsageError):
        ChunkReader(max_chunk_size=0)
    with pytest.raises(RtmpUsageError):
        ChunkReader(max_message_size=1 << 25)


message = st.builds(
    RtmpMessage,
    st.sampled_from([8, 9, 18, 20, 4]),
    st.sampled_from([0, 1, 2]),
    st.one_of(st.integers(0, 5000), st.integers(0xFFFFF0, 0x100000F), st.integers(0, 2**32 - 1)),
    st.binary(max_size=700),
    st.sampled_from([3, 4, 5, 6, 63, 64, 319, 320, 1000]),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(message, min_size=1, max_size=12),
    st.sampled_from([1, 2, 50, 128, 129, 4096]),
    st.lists(st.integers(1, 300), min_size=1, max_size=20),
)
def test_writer_reader_round_trip(
    msgs: list[RtmpMessage], chunk_size: int, splits: list[int]
) -> None:
    w = ChunkWriter()
    wire = w.set_chunk_size(chunk_size) + b"".join(w.write(m) for m in msgs)
    r = ChunkReader(max_chunk_size=4096)
    got: list[RtmpMessage] = []
    pos, i = 0, 0
    while pos < len(wire):
        step = splits[i % len(splits)]
        got += r.receive_data(wire[pos : pos + step])
        pos += step
        i += 1
    assert got[0].type_id == MessageType.SET_CHUNK_SIZE
    assert got[1:] == msgs
    assert r.buffered_bytes == 0
    assert r.bytes_received == len(wire)


@given(st.binary(max_size=400))
def test_random_bytes_only_raise_peer_errors(data: bytes) -> None:
    try:
        ChunkReader(max_message_size=4096, max_chunk_size=4096).receive_data(data)
    except RtmpPeerError:
        pass
