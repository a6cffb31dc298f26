"""Server handshake: S0/S1/S2 bytes, leftovers, byte-by-byte input, refusals."""

from __future__ import annotations

import pytest

from origin.rtmp.errors import HandshakeError, RtmpUsageError
from origin.rtmp.handshake import HANDSHAKE_SIZE, ServerHandshake, build_c0c1

RANDOM = bytes(range(256)) * 6  # 1536 bytes; S1 uses the first 1528


def test_answer_is_s0_s1_s2_and_leftover_is_kept() -> None:
    hs = ServerHandshake(epoch_ms=0x01020304, random_bytes=RANDOM[:1528])
    c0c1 = build_c0c1(epoch_ms=7, random_bytes=bytes(1528))
    out = hs.receive_data(c0c1)
    assert len(out) == 1 + 2 * HANDSHAKE_SIZE
    assert out[0] == 3
    assert out[1:9] == b"\x01\x02\x03\x04\x00\x00\x00\x00"
    assert out[9:1537] == RANDOM[:1528]
    assert out[1537:] == c0c1[1:], "S2 echoes C1"
    assert not hs.done and hs.awaiting_c2
    c2 = out[1:1537]
    assert hs.receive_data(c2 + b"\x02chunk") == b""
    assert hs.done
    assert hs.leftover == b"\x02chunk"
    with pytest.raises(RtmpUsageError):
        hs.receive_data(b"x")


def test_byte_by_byte() -> None:
    hs = ServerHandshake()
    data = build_c0c1() + bytes(HANDSHAKE_SIZE)
    out = b"".join(hs.receive_data(data[i : i + 1]) for i in range(len(data)))
    assert len(out) == 1 + 2 * HANDSHAKE_SIZE
    assert hs.done and hs.leftover == b""


def test_digest_style_c1_is_answered_too() -> None:
    # ffmpeg's C1 carries a non-zero version (Flash digest scheme); we still answer simply.
    c1 = b"\x00\x00\x00\x00\x09\x00\x7c\x02" + bytes(1528)
    out = ServerHandshake().receive_data(b"\x03" + c1)
    assert out[1537:] == c1


@pytest.mark.parametrize(
    ("first", "match"),
    [(b"\x06", "RTMPE"), (b"\x16", "TLS or HTTP"), (b"G", "TLS or HTTP"), (b"\x00", "version 0")],
)
def test_bad_versions_are_refused_immediately(first: bytes, match: str) -> None:
    with pytest.raises(HandshakeError, match=match):
        ServerHandshake().receive_data(first)


def test_random_part_must_have_the_right_size() -> None:
    with pytest.raises(RtmpUsageError):
        ServerHandshake(random_bytes=b"short")
