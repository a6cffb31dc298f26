"""Set Chunk Size above 0xFFFFFF means 0xFFFFFF (RTMP spec 5.4.1: no message is larger)."""

from __future__ import annotations

import struct

import pytest

from origin.rtmp.chunk import ChunkReader, ChunkWriter, MessageType, RtmpMessage
from origin.rtmp.connection import ConnectionLimits


@pytest.mark.parametrize("size", [0x1000000, 0x12345678, 0x7FFFFFFF])
def test_chunk_size_above_the_largest_message_is_clamped(size: int) -> None:
    set_size = RtmpMessage(MessageType.SET_CHUNK_SIZE, 0, 0, struct.pack(">I", size), 2)
    payload = bytes(range(256)) * 300  # one chunk once the size applies
    writer = ChunkWriter()
    wire = writer.write(set_size)
    writer.chunk_size = 0xFFFFFF
    wire += writer.write(RtmpMessage(9, 1, 0, payload, 6))
    reader = ChunkReader(max_chunk_size=ConnectionLimits().max_chunk_size)
    got = reader.receive_data(wire)
    assert reader.chunk_size == 0xFFFFFF
    assert [m.type_id for m in got] == [MessageType.SET_CHUNK_SIZE, 9]
    assert got[1].payload == payload
