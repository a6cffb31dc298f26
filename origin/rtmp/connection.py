"""The server side of one RTMP connection for publishers, sans-I/O.

Feed received bytes to :meth:`ServerConnection.receive_data`, act on the events
it returns (admission decisions are the caller's: ``accept_*`` / ``reject_*``),
and send :meth:`ServerConnection.data_to_send`. No sockets, no clock, no asyncio.

Handled internally: the handshake, chunk sizes both ways, window acknowledgements
(we acknowledge every ``window`` bytes the peer asks for), ping requests,
``releaseStream`` / ``FCPublish`` / ``createStream`` replies, ``FCUnpublish`` /
``closeStream`` / ``deleteStream`` bookkeeping, aggregate messages.

A peer fault raises an :class:`~origin.rtmp.errors.RtmpPeerError` subclass from
``receive_data``; the connection is then unusable and must be closed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from origin.rtmp import messages as m
from origin.rtmp.amf0 import UNDEFINED, AmfValue
from origin.rtmp.chunk import ChunkReader, ChunkWriter, MessageType, RtmpMessage
from origin.rtmp.errors import (
    AmfDecodeError,
    FlvFormatError,
    LimitExceeded,
    RtmpProtocolViolation,
    RtmpUsageError,
)
from origin.rtmp.events import (
    ConnectRequested,
    Event,
    HandshakeCompleted,
    MediaReceived,
    MetadataReceived,
    Notice,
    PlayRequested,
    PublishFinished,
    PublishRequested,
)
from origin.rtmp.handshake import ServerHandshake
from origin.rtmp.tags import MediaTag, TagType, parse_audio_header, parse_video_header

__all__ = ["ConnectionLimits", "ServerConnection"]

_FMS_VERSION: Final = "FMS/3,5,7,7009"
_MAX_DEFERRED: Final = 64
_CONTROL_TYPES: Final = frozenset(
    {
        MessageType.SET_CHUNK_SIZE,
        MessageType.ABORT,
        MessageType.ACKNOWLEDGEMENT,
        MessageType.USER_CONTROL,
        MessageType.WINDOW_ACK_SIZE,
        MessageType.SET_PEER_BANDWIDTH,
    }
)
_FLV_TAG_HEADER: Final = 11


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Per-connection protocol limits and the values we announce to the peer.

    Memory per connection is bounded by ``max_message_size`` (a chunk never holds
    more than the rest of its message), so the chunk size cap defaults to the
    largest a message can use: encoders that announce huge chunk sizes still work.
    """

    max_chunk_size: int = 0xFFFFFF
    max_message_size: int = 8 << 20
    max_chunk_streams: int = 64
    max_streams: int = 8
    out_chunk_size: int = 4096
    window_ack_size: int = 2_500_000


class _Phase(enum.Enum):
    HANDSHAKE = enum.auto()
    AWAIT_CONNECT = enum.auto()
    CONNECTING = enum.auto()
    CONNECTED = enum.auto()
    CLOSED = enum.auto()


class _StreamState(enum.Enum):
    IDLE = enum.auto()
    PUBLISH_PENDING = enum.auto()
    PUBLISHING = enum.auto()


class ServerConnection:
    __slots__ = (
        "_connect_txn",
        "_deferred",
        "_handshake",
        "_last_ack",
        "_limits",
        "_next_stream_id",
        "_out",
        "_peer_window",
        "_phase",
        "_publish_names",
        "_reader",
        "_streams",
        "_writer",
        "acks_received",
        "app",
    )

    def __init__(
        self,
        limits: ConnectionLimits | None = None,
        *,
        epoch_ms: int = 0,
        random_bytes: bytes | None = None,
    ) -> None:
        self._limits = limits or ConnectionLimits()
        self._handshake = ServerHandshake(epoch_ms=epoch_ms, random_bytes=random_bytes)
        self._reader = ChunkReader(
            max_chunk_size=self._limits.max_chunk_size,
            max_message_size=self._limits.max_message_size,
            max_chunk_streams=self._limits.max_chunk_streams,
        )
        self._writer = ChunkWriter()
        self._out = bytearray()
        self._phase = _Phase.HANDSHAKE
        self._connect_txn = 0.0
        self._peer_window = 0
        self._last_ack = 0
        self._next_stream_id = 1
        self._streams: dict[int, _StreamState] = {}
        self._publish_names: dict[int, str] = {}
        self._deferred: list[RtmpMessage] = []
        self.acks_received = 0
        self.app = ""

    # ------------------------------------------------------------------ properties

    @property
    def handshake_done(self) -> bool:
        return self._phase is not _Phase.HANDSHAKE

    @property
    def connected(self) -> bool:
        return self._phase is _Phase.CONNECTED

    @property
    def bytes_received(self) -> int:
        return self._reader.bytes_received

    def publishing_streams(self) -> list[int]:
        return [sid for sid, st in self._streams.items() if st is _StreamState.PUBLISHING]

    # ------------------------------------------------------------------ I/O

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def _send(self, msg: RtmpMessage) -> None:
        self._out += self._writer.write(msg)

    def receive_data(self, data: bytes) -> list[Event]:
        if self._phase is _Phase.CLOSED:
            raise RtmpUsageError("connection is closed")
        events: list[Event] = []
        if self._phase is _Phase.HANDSHAKE:
            self._out += self._handshake.receive_data(data)
            if not self._handshake.done:
                return events
            self._phase = _Phase.AWAIT_CONNECT
            events.append(HandshakeCompleted())
            data = self._handshake.leftover
            if not data:
                return events
        for msg in self._reader.receive_data(data):
            if self._phase is _Phase.CONNECTING and msg.type_id not in _CONTROL_TYPES:
                # Pipelined after connect: handled once the caller answers the connect.
                if len(self._deferred) >= _MAX_DEFERRED:
                    raise LimitExceeded(f"more than {_MAX_DEFERRED} messages before connect")
                self._deferred.append(msg)
                continue
            self._handle_message(msg, events)
        if self._peer_window and self._reader.bytes_received - self._last_ack >= self._peer_window:
            self._last_ack = self._reader.bytes_received
            self._send(m.acknowledgement(self._last_ack))
        return events

    def close(self) -> None:
        self._phase = _Phase.CLOSED

    # ------------------------------------------------------------------ message dispatch

    def _handle_message(self, msg: RtmpMessage, events: list[Event]) -> None:
        t = msg.type_id
        if t in (MessageType.SET_CHUNK_SIZE, MessageType.ABORT):
            return  # applied by the chunk reader
        if t == MessageType.WINDOW_ACK_SIZE:
            size = m.parse_u32(msg)
            if size == 0:
                raise RtmpProtocolViolation("window acknowledgement size 0")
            self._peer_window = size
        elif t == MessageType.ACKNOWLEDGEMENT:
            m.parse_u32(msg)
            self.acks_received += 1
        elif t == MessageType.SET_PEER_BANDWIDTH:
            m.parse_u32(msg)  # we send little; nothing to adapt
        elif t == MessageType.USER_CONTROL:
            uc = m.parse_user_control(msg)
            if uc.event == m.UserControlEvent.PING_REQUEST:
                self._send(m.user_control(m.UserControlEvent.PING_RESPONSE, uc.value))
        elif t in (MessageType.COMMAND_AMF0, MessageType.COMMAND_AMF3):
            self._handle_command(m.parse_command(msg), events)
        elif t in (MessageType.DATA_AMF0, MessageType.DATA_AMF3):
            self._handle_data(msg, events)
        elif t in (MessageType.AUDIO, MessageType.VIDEO):
            self._handle_media(msg.stream_id, TagType(t), msg.timestamp, msg.payload, events)
        elif t == MessageType.AGGREGATE:
            self._handle_aggregate(msg, events)
        else:
            events.append(Notice("ignored_message", f"message type {t}"))

    def _require_connected(self, name: str) -> None:
        if self._phase is not _Phase.CONNECTED:
            raise RtmpProtocolViolation(f"command {name!r} before a successful connect")

    def _handle_command(self, cmd: m.Command, events: list[Event]) -> None:
        name = cmd.name
        if name == "connect":
            if self._phase is not _Phase.AWAIT_CONNECT:
                raise RtmpProtocolViolation("second connect on one connection")
            props = cmd.command_object
            if not isinstance(props, dict):
                raise RtmpProtocolViolation("connect without a command object")
            app = props.get("app")
            if not isinstance(app, str):
                raise RtmpProtocolViolation("connect without an 'app' string")
            tc_url, flash_ver = props.get("tcUrl"), props.get("flashVer")
            self._phase = _Phase.CONNECTING
            self._connect_txn = cmd.transaction_id
            self.app = app
            events.append(
                ConnectRequested(
                    cmd.transaction_id,
                    app,
                    tc_url if isinstance(tc_url, str) else "",
                    flash_ver if isinstance(flash_ver, str) else "",
                    dict(props),
                )
            )
            return
        self._require_connected(name)
        if name == "createStream":
            if len(self._streams) >= self._limits.max_streams:
                raise LimitExceeded(f"more than {self._limits.max_streams} streams")
            sid = self._next_stream_id
            self._next_stream_id += 1
            self._streams[sid] = _StreamState.IDLE
            self._reply(cmd, None, float(sid))
        elif name in ("releaseStream", "FCPublish"):
            self._reply(cmd, None, UNDEFINED)
            if name == "FCPublish":
                self._send(
                    m.command_message(
                        "onFCPublish",
                        0.0,
                        None,
                        _status("status", "NetStream.Publish.Start", "FCPublish received."),
                    )
                )
        elif name == "publish":
            self._on_publish(cmd, events)
        elif name == "FCUnpublish":
            self._reply(cmd, None, UNDEFINED)
            target = cmd.arguments[0] if cmd.arguments else None
            for sid in self._active_streams():
                if len(self._active_streams()) == 1 or self._publish_names.get(sid) == target:
                    self._send(
                        m.command_message(
                            "onFCUnpublish",
                            0.0,
                            None,
                            _status(
                                "status", "NetStream.Unpublish.Success", "FCUnpublish received."
                            ),
                        )
                    )
                    self._finish(sid, "FCUnpublish", events)
                    break
        elif name == "closeStream":
            if cmd.stream_id in self._streams:
                self._finish(cmd.stream_id, "closeStream", events)
        elif name == "deleteStream":
            arg = cmd.arguments[0] if cmd.arguments else None
            sid = int(arg) if isinstance(arg, float) and arg.is_integer() else -1
            if sid in self._streams:
                self._finish(sid, "deleteStream", events)
                del self._streams[sid]
        elif name == "play":
            events.append(PlayRequested(cmd.stream_id, cmd.transaction_id))
        else:
            # _checkbw, getStreamLength, FCSubscribe, ...: answer calls that wait for one.
            if cmd.transaction_id:
                self._send(
                    m.command_message(
                        "_error",
                        cmd.transaction_id,
                        None,
                        _status(
                            "error", "NetConnection.Call.Failed", f"Method not found ({name})."
                        ),
                    )
                )
            events.append(Notice("ignored_command", name))

    def _reply(self, cmd: m.Command, command_object: AmfValue, *args: AmfValue) -> None:
        if cmd.transaction_id:
            self._send(m.command_message("_result", cmd.transaction_id, command_object, *args))

    def _active_streams(self) -> list[int]:
        return [sid for sid, st in self._streams.items() if st is not _StreamState.IDLE]

    def _on_publish(self, cmd: m.Command, events: list[Event]) -> None:
        sid = cmd.stream_id
        state = self._streams.get(sid)
        if state is None:
            raise RtmpProtocolViolation(f"publish on stream {sid} that was never created")
        if state is not _StreamState.IDLE:
            raise RtmpProtocolViolation(f"publish on stream {sid} that is already publishing")
        name = cmd.arguments[0] if cmd.arguments else None
        if not isinstance(name, str):
            raise RtmpProtocolViolation("publish without a stream name")
        kind = cmd.arguments[1] if len(cmd.arguments) > 1 else "live"
        self._streams[sid] = _StreamState.PUBLISH_PENDING
        self._publish_names[sid] = name
        events.append(
            PublishRequested(
                sid, cmd.transaction_id, name, kind if isinstance(kind, str) else "live"
            )
        )

    def _finish(self, sid: int, command: str, events: list[Event]) -> None:
        if self._streams.get(sid) in (_StreamState.PUBLISHING, _StreamState.PUBLISH_PENDING):
            events.append(PublishFinished(sid, command))
        self._streams[sid] = _StreamState.IDLE
        self._publish_names.pop(sid, None)

    def _receiving(self, sid: int) -> bool:
        return self._streams.get(sid) in (_StreamState.PUBLISHING, _StreamState.PUBLISH_PENDING)

    def _handle_data(self, msg: RtmpMessage, events: list[Event]) -> None:
        if not self._receiving(msg.stream_id):
            events.append(Notice("data_on_idle_stream", f"stream {msg.stream_id}"))
            return
        try:
            values = m.parse_data(msg)
        except (AmfDecodeError, RtmpProtocolViolation) as exc:
            events.append(Notice("bad_data_message", str(exc)))
            return
        if values and values[0] == "@setDataFrame":
            values = values[1:]
        if len(values) >= 2 and values[0] == "onMetaData" and isinstance(values[1], dict):
            events.append(MetadataReceived(msg.stream_id, msg.timestamp, dict(values[1])))
        else:
            label = values[0] if values and isinstance(values[0], str) else "?"
            events.append(Notice("ignored_data", label))

    def _handle_media(
        self, sid: int, kind: TagType, timestamp: int, payload: bytes, events: list[Event]
    ) -> None:
        if not self._receiving(sid):
            events.append(Notice("media_on_idle_stream", f"stream {sid}"))
            return
        try:
            if kind == TagType.VIDEO:
                parse_video_header(payload)
            else:
                parse_audio_header(payload)
        except FlvFormatError as exc:
            events.append(Notice("bad_media_tag", str(exc)))
            return
        events.append(MediaReceived(sid, MediaTag(kind, timestamp, payload)))

    def _handle_aggregate(self, msg: RtmpMessage, events: list[Event]) -> None:
        data = msg.payload
        pos = 0
        base: int | None = None
        while pos < len(data):
            if len(data) - pos < _FLV_TAG_HEADER:
                raise RtmpProtocolViolation("truncated FLV tag header in aggregate message")
            tag_type = data[pos]
            size = int.from_bytes(data[pos + 1 : pos + 4], "big")
            ts = int.from_bytes(data[pos + 4 : pos + 7], "big") | (data[pos + 7] << 24)
            body_start = pos + _FLV_TAG_HEADER
            body_end = body_start + size
            if body_end + 4 > len(data):
                raise RtmpProtocolViolation("truncated FLV tag in aggregate message")
            if base is None:
                base = ts
            stamp = (msg.timestamp + ts - base) & 0xFFFFFFFF
            body = data[body_start:body_end]
            if tag_type in (TagType.AUDIO, TagType.VIDEO):
                self._handle_media(msg.stream_id, TagType(tag_type), stamp, body, events)
            elif tag_type == TagType.SCRIPT:
                sub = RtmpMessage(MessageType.DATA_AMF0, msg.stream_id, stamp, body)
                self._handle_data(sub, events)
            pos = body_end + 4

    # ------------------------------------------------------------------ decisions

    def accept_connect(self, *, object_encoding: float = 0.0) -> list[Event]:
        """Answer the connect with success; returns the events of messages the peer
        pipelined behind it (handle them like those of ``receive_data``)."""
        if self._phase is not _Phase.CONNECTING:
            raise RtmpUsageError("no connect is waiting for an answer")
        lim = self._limits
        self._send(m.window_ack_size(lim.window_ack_size))
        self._send(m.set_peer_bandwidth(lim.window_ack_size, m.BandwidthLimit.DYNAMIC))
        self._out += self._writer.set_chunk_size(lim.out_chunk_size)
        self._send(m.user_control(m.UserControlEvent.STREAM_BEGIN, 0))
        info = _status("status", "NetConnection.Connect.Success", "Connection succeeded.")
        info["objectEncoding"] = object_encoding
        self._send(
            m.command_message(
                "_result",
                self._connect_txn,
                {"fmsVer": _FMS_VERSION, "capabilities": 31.0, "mode": 1.0},
                info,
            )
        )
        self._phase = _Phase.CONNECTED
        events: list[Event] = []
        deferred, self._deferred = self._deferred, []
        for msg in deferred:
            self._handle_message(msg, events)
        return events

    def reject_connect(self, description: str) -> None:
        if self._phase is not _Phase.CONNECTING:
            raise RtmpUsageError("no connect is waiting for an answer")
        self._send(
            m.command_message(
                "_error",
                self._connect_txn,
                None,
                _status("error", "NetConnection.Connect.Rejected", description),
            )
        )
        self._phase = _Phase.CLOSED
        self._deferred.clear()

    def _pending(self, sid: int) -> None:
        if self._streams.get(sid) is not _StreamState.PUBLISH_PENDING:
            raise RtmpUsageError(f"stream {sid} has no publish waiting for an answer")

    def publish_pending(self, stream_id: int) -> bool:
        """True while a publish on ``stream_id`` waits for ``accept_publish``/``reject_publish``
        (False once a pipelined deleteStream/FCUnpublish/closeStream withdrew it)."""
        return self._streams.get(stream_id) is _StreamState.PUBLISH_PENDING

    def accept_publish(self, stream_id: int, description: str, details: str = "") -> None:
        self._pending(stream_id)
        self._send(m.user_control(m.UserControlEvent.STREAM_BEGIN, stream_id))
        info = _status("status", "NetStream.Publish.Start", description)
        if details:
            info["details"] = details
        self._send(_status_message(stream_id, info))
        self._streams[stream_id] = _StreamState.PUBLISHING

    def reject_publish(self, stream_id: int, code: str, description: str) -> None:
        self._pending(stream_id)
        self._send(_status_message(stream_id, _status("error", code, description)))
        self._streams[stream_id] = _StreamState.IDLE
        self._publish_names.pop(stream_id, None)

    def refuse(self, stream_id: int, code: str, description: str) -> None:
        """Send an error onStatus on ``stream_id`` (e.g. to refuse ``play``)."""
        self._send(_status_message(stream_id, _status("error", code, description)))

    def end_publish(self, stream_id: int, description: str) -> None:
        """Server-side end of a publish (e.g. stream key rotated): tell the encoder why."""
        if self._streams.get(stream_id) is not _StreamState.PUBLISHING:
            raise RtmpUsageError(f"stream {stream_id} is not publishing")
        self._send(
            _status_message(stream_id, _status("error", "NetStream.Publish.Denied", description))
        )
        self._streams[stream_id] = _StreamState.IDLE
        self._publish_names.pop(stream_id, None)


def _status(level: str, code: str, description: str) -> dict[str, AmfValue]:
    return {"level": level, "code": code, "description": description}


def _status_message(stream_id: int, info: dict[str, AmfValue]) -> RtmpMessage:
    return m.command_message(
        "onStatus", 0.0, None, info, stream_id=stream_id, chunk_stream_id=m.STATUS_CHUNK_STREAM
    )
