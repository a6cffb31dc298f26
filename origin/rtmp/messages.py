"""RTMP protocol control, user control and command messages (RTMP 1.0 sections 5.4, 6.2, 7.1).

Builders return :class:`~origin.rtmp.chunk.RtmpMessage` values ready for a
:class:`~origin.rtmp.chunk.ChunkWriter`; parsers take a received message and
raise :class:`~origin.rtmp.errors.RtmpProtocolViolation` on malformed payloads.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from origin.rtmp import amf0
from origin.rtmp.amf0 import AmfValue
from origin.rtmp.chunk import MessageType, RtmpMessage
from origin.rtmp.errors import AmfDecodeError, RtmpProtocolViolation

__all__ = [
    "COMMAND_CHUNK_STREAM",
    "CONTROL_CHUNK_STREAM",
    "STATUS_CHUNK_STREAM",
    "BandwidthLimit",
    "Command",
    "UserControl",
    "UserControlEvent",
    "acknowledgement",
    "command_message",
    "data_message",
    "parse_command",
    "parse_data",
    "parse_u32",
    "parse_user_control",
    "set_peer_bandwidth",
    "user_control",
    "window_ack_size",
]

#: Protocol control messages travel on chunk stream 2, message stream 0 (spec 5.4).
CONTROL_CHUNK_STREAM: Final = 2
#: NetConnection command replies.
COMMAND_CHUNK_STREAM: Final = 3
#: NetStream status and data messages (what FMS and nginx-rtmp use).
STATUS_CHUNK_STREAM: Final = 5

_U32: Final = struct.Struct(">I")


class BandwidthLimit(enum.IntEnum):
    HARD = 0
    SOFT = 1
    DYNAMIC = 2


class UserControlEvent(enum.IntEnum):
    STREAM_BEGIN = 0
    STREAM_EOF = 1
    STREAM_DRY = 2
    SET_BUFFER_LENGTH = 3
    STREAM_IS_RECORDED = 4
    PING_REQUEST = 6
    PING_RESPONSE = 7


@dataclass(frozen=True, slots=True)
class UserControl:
    """A user control event: its type and raw event data (usually a u32, stream id or time)."""

    event: int
    data: bytes

    @property
    def value(self) -> int:
        """The first u32 of the event data (stream id for stream events, time for pings)."""
        if len(self.data) < 4:
            raise RtmpProtocolViolation(f"user control event {self.event} without a 32-bit value")
        return int(_U32.unpack_from(self.data)[0])


@dataclass(frozen=True, slots=True)
class Command:
    """A decoded AMF command: ``name``, transaction id, command object and arguments."""

    name: str
    transaction_id: float
    command_object: AmfValue
    arguments: tuple[AmfValue, ...]
    stream_id: int


def parse_u32(msg: RtmpMessage) -> int:
    if len(msg.payload) < 4:
        raise RtmpProtocolViolation(
            f"message type {msg.type_id} needs 4 bytes, got {len(msg.payload)}"
        )
    return int(_U32.unpack_from(msg.payload)[0])


def window_ack_size(size: int) -> RtmpMessage:
    return RtmpMessage(MessageType.WINDOW_ACK_SIZE, 0, 0, _U32.pack(size), CONTROL_CHUNK_STREAM)


def acknowledgement(sequence: int) -> RtmpMessage:
    return RtmpMessage(
        MessageType.ACKNOWLEDGEMENT, 0, 0, _U32.pack(sequence & 0xFFFFFFFF), CONTROL_CHUNK_STREAM
    )


def set_peer_bandwidth(size: int, limit: BandwidthLimit) -> RtmpMessage:
    payload = _U32.pack(size) + bytes([limit])
    return RtmpMessage(MessageType.SET_PEER_BANDWIDTH, 0, 0, payload, CONTROL_CHUNK_STREAM)


def user_control(event: UserControlEvent, value: int) -> RtmpMessage:
    payload = struct.pack(">HI", event, value & 0xFFFFFFFF)
    return RtmpMessage(MessageType.USER_CONTROL, 0, 0, payload, CONTROL_CHUNK_STREAM)


def parse_user_control(msg: RtmpMessage) -> UserControl:
    if len(msg.payload) < 2:
        raise RtmpProtocolViolation("user control message shorter than its event type")
    return UserControl(int.from_bytes(msg.payload[:2], "big"), msg.payload[2:])


def command_message(
    name: str,
    transaction_id: float,
    command_object: AmfValue,
    *arguments: AmfValue,
    stream_id: int = 0,
    chunk_stream_id: int = COMMAND_CHUNK_STREAM,
) -> RtmpMessage:
    payload = amf0.encode_all([name, transaction_id, command_object, *arguments])
    return RtmpMessage(MessageType.COMMAND_AMF0, stream_id, 0, payload, chunk_stream_id)


def data_message(values: Sequence[AmfValue], *, stream_id: int, timestamp: int = 0) -> RtmpMessage:
    return RtmpMessage(
        MessageType.DATA_AMF0, stream_id, timestamp, amf0.encode_all(values), STATUS_CHUNK_STREAM
    )


def _amf0_payload(msg: RtmpMessage) -> bytes:
    payload = msg.payload
    if msg.type_id in (MessageType.COMMAND_AMF3, MessageType.DATA_AMF3):
        # AMF3 command/data messages start with one format byte, then AMF0 values
        # (that is how every encoder sends them; a real AMF3 body would start 0x11).
        if not payload or payload[0] != 0:
            raise RtmpProtocolViolation("AMF3-encoded command bodies are not supported")
        payload = payload[1:]
    return payload


def parse_command(msg: RtmpMessage) -> Command:
    """Decode a command message (type 20, or 17 with an AMF0 body)."""
    try:
        values = amf0.decode_all(_amf0_payload(msg))
    except AmfDecodeError as exc:
        raise AmfDecodeError(f"undecodable command message: {exc}") from exc
    if len(values) < 2 or not isinstance(values[0], str):
        raise RtmpProtocolViolation("command message without a name and transaction id")
    txn = values[1]
    if isinstance(txn, bool) or not isinstance(txn, float):
        raise RtmpProtocolViolation(f"command {values[0]!r} transaction id is not a number")
    command_object = values[2] if len(values) > 2 else None
    return Command(values[0], txn, command_object, tuple(values[3:]), msg.stream_id)


def parse_data(msg: RtmpMessage) -> list[AmfValue]:
    """Decode a data message (type 18, or 15 with an AMF0 body)."""
    return amf0.decode_all(_amf0_payload(msg))
