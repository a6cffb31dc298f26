"""The sans-I/O server connection, driven in memory (no sockets)."""

from __future__ import annotations

import itertools
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from origin.rtmp import amf0
from origin.rtmp.amf0 import UNDEFINED, AmfValue, EcmaArray
from origin.rtmp.chunk import ChunkReader, ChunkWriter, MessageType, RtmpMessage
from origin.rtmp.connection import ConnectionLimits, ServerConnection
from origin.rtmp.errors import (
    AmfDecodeError,
    LimitExceeded,
    RtmpPeerError,
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
from origin.rtmp.handshake import HANDSHAKE_SIZE, build_c0c1

AVC_SEQ = b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f\xff"
AVC_KEY = b"\x17\x01\x00\x00\x21" + b"\x00\x00\x00\x05\x65\x88\x84\x00\x10"
AAC_SEQ = b"\xaf\x00\x11\x90"


class Peer:
    """An in-memory client: writes chunks into the connection, decodes what it answers."""

    def __init__(self, limits: ConnectionLimits | None = None, *, bytewise: bool = False) -> None:
        self.conn = ServerConnection(limits)
        self.writer = ChunkWriter()
        self.reader = ChunkReader()
        self.bytewise = bytewise
        self.replies: list[RtmpMessage] = []
        self.handshake_answered = False

    def send(self, data: bytes) -> list[Event]:
        if self.bytewise:
            events: list[Event] = []
            for i in range(len(data)):
                events += self.conn.receive_data(data[i : i + 1])
        else:
            events = self.conn.receive_data(data)
        out = self.conn.data_to_send()
        if not self.handshake_answered:
            assert len(out) == 1 + 2 * HANDSHAKE_SIZE or not out
            self.handshake_answered = bool(out)
        else:
            self.replies += self.reader.receive_data(out)
        return events

    def flush(self) -> None:
        self.replies += self.reader.receive_data(self.conn.data_to_send())

    def handshake(self) -> list[Event]:
        events = self.send(build_c0c1())
        return events + self.send(bytes(HANDSHAKE_SIZE))

    def message(self, msg: RtmpMessage) -> list[Event]:
        return self.send(self.writer.write(msg))

    def command(self, *values: AmfValue, sid: int = 0, csid: int = 3) -> list[Event]:
        return self.message(RtmpMessage(20, sid, 0, amf0.encode_all(list(values)), csid))

    def take_commands(self) -> list[list[Any]]:
        cmds = [amf0.decode_all(m.payload) for m in self.replies if m.type_id == 20]
        self.replies.clear()
        return cmds

    def connect(self, app: str = "live/lv_1") -> ConnectRequested:
        if not self.conn.handshake_done:
            self.handshake()
        (ev,) = self.command(
            "connect",
            1.0,
            {"app": app, "tcUrl": f"rtmp://h/{app}", "flashVer": "FMLE/3.0", "type": "nonprivate"},
        )
        assert isinstance(ev, ConnectRequested)
        assert self.conn.accept_connect() == []
        self.flush()
        return ev

    def publish(self, name: str = "key") -> PublishRequested:
        self.command("releaseStream", 2.0, None, name)
        self.command("FCPublish", 3.0, None, name)
        self.command("createStream", 4.0, None)
        created = [amf0.decode_all(m.payload) for m in self.replies if m.type_id == 20]
        sid = int(created[-1][3])  # type: ignore[arg-type]
        (ev,) = self.command("publish", 5.0, None, name, "live", sid=sid, csid=4)
        assert isinstance(ev, PublishRequested)
        return ev


def test_full_publish_session_events_and_replies() -> None:
    p = Peer()
    assert p.handshake() == [HandshakeCompleted()]
    ev = p.connect()
    assert (ev.app, ev.tc_url, ev.flash_ver) == ("live/lv_1", "rtmp://h/live/lv_1", "FMLE/3.0")
    assert [m.type_id for m in p.replies] == [5, 6, 1, 4, 20]
    assert struct.unpack(">I", p.replies[0].payload)[0] == 2_500_000
    assert p.replies[1].payload[4] == 2  # dynamic
    assert p.reader.chunk_size == 4096
    (result,) = p.take_commands()
    assert result[0] == "_result" and result[1] == 1.0
    assert result[3]["code"] == "NetConnection.Connect.Success"

    pub = p.publish()
    assert (pub.stream_id, pub.name, pub.publish_type) == (1, "key", "live")
    cmds = p.take_commands()
    assert cmds[0] == ["_result", 2.0, None, UNDEFINED]
    assert cmds[1] == ["_result", 3.0, None, UNDEFINED]
    assert cmds[2][0] == "onFCPublish"
    assert cmds[3] == ["_result", 4.0, None, 1.0]

    p.conn.accept_publish(1, "Publishing lv_1.", "lv_1")
    p.flush()
    assert [m.type_id for m in p.replies] == [4, 20]
    (status,) = p.take_commands()
    assert status[0] == "onStatus"
    assert status[3]["code"] == "NetStream.Publish.Start"
    assert p.conn.publishing_streams() == [1]

    meta = amf0.encode_all(["@setDataFrame", "onMetaData", EcmaArray({"width": 1280.0})])
    (ev_meta,) = p.message(RtmpMessage(18, 1, 0, meta, 4))
    assert ev_meta == MetadataReceived(1, 0, {"width": 1280.0})
    events = (
        p.message(RtmpMessage(9, 1, 0, AVC_SEQ, 6))
        + p.message(RtmpMessage(8, 1, 0, AAC_SEQ, 4))
        + p.message(RtmpMessage(9, 1, 33, AVC_KEY, 6))
    )
    assert [type(e) for e in events] == [MediaReceived] * 3
    tags = [e.tag for e in events if isinstance(e, MediaReceived)]
    assert tags[0].is_sequence_header and tags[1].is_sequence_header
    assert tags[2].is_keyframe and tags[2].timestamp == 33
    assert tags[2].video_header().composition_time == 0x21

    (fin,) = p.command("FCUnpublish", 6.0, None, "key")
    assert fin == PublishFinished(1, "FCUnpublish")
    assert p.command("deleteStream", 7.0, None, 1.0) == []
    assert p.conn.publishing_streams() == []


def test_bytewise_feeding_gives_the_same_events() -> None:
    p = Peer(bytewise=True)
    p.connect()
    p.publish()
    p.conn.accept_publish(1, "ok")
    events = p.message(RtmpMessage(9, 1, 0, AVC_SEQ, 6))
    assert [type(e) for e in events] == [MediaReceived]


def test_media_before_the_decision_is_delivered_and_idle_media_is_noticed() -> None:
    p = Peer()
    p.connect()
    p.command("createStream", 2.0, None)
    (notice,) = p.message(RtmpMessage(9, 1, 0, AVC_SEQ, 6))
    assert isinstance(notice, Notice) and notice.kind == "media_on_idle_stream"
    p.command("publish", 0.0, None, "key", "live", sid=1, csid=4)
    # Arrives in the same read as publish, before the adapter decides: kept in order.
    (ev,) = p.message(RtmpMessage(9, 1, 0, AVC_SEQ, 6))
    assert isinstance(ev, MediaReceived)
    (bad,) = p.message(RtmpMessage(9, 1, 0, b"", 6))
    assert isinstance(bad, Notice) and bad.kind == "bad_media_tag"


def test_aggregate_messages_are_split_into_tags() -> None:
    p = Peer()
    p.connect()
    p.publish()
    p.conn.accept_publish(1, "ok")

    def sub(tag_type: int, ts: int, body: bytes) -> bytes:
        head = bytes([tag_type]) + len(body).to_bytes(3, "big") + (ts & 0xFFFFFF).to_bytes(3, "big")
        return head + bytes([ts >> 24]) + b"\x00\x00\x00" + body + struct.pack(">I", 11 + len(body))

    body = sub(9, 5000, AVC_SEQ) + sub(8, 5010, AAC_SEQ) + sub(9, 5033, AVC_KEY)
    events = p.message(RtmpMessage(MessageType.AGGREGATE, 1, 100, body, 6))
    assert all(isinstance(e, MediaReceived) for e in events)
    stamps = [(e.tag.tag_type, e.tag.timestamp) for e in events if isinstance(e, MediaReceived)]
    assert stamps == [(9, 100), (8, 110), (9, 133)]
    with pytest.raises(RtmpProtocolViolation, match="aggregate"):
        p.message(RtmpMessage(MessageType.AGGREGATE, 1, 100, body[:-3], 6))


def test_acknowledgements_follow_the_peer_window_and_pings_are_answered() -> None:
    p = Peer()
    p.connect()
    p.replies.clear()
    p.message(RtmpMessage(MessageType.WINDOW_ACK_SIZE, 0, 0, struct.pack(">I", 1000), 2))
    p.message(RtmpMessage(MessageType.USER_CONTROL, 0, 0, struct.pack(">HI", 6, 77), 2))
    for _ in range(10):
        p.command("noSuchCall", 0.0, None, "x" * 200)
    acks = [struct.unpack(">I", m.payload)[0] for m in p.replies if m.type_id == 3]
    assert acks and acks[0] >= 1000
    assert all(b - a >= 1000 for a, b in itertools.pairwise(acks))
    pongs = [m.payload for m in p.replies if m.type_id == 4]
    assert pongs == [struct.pack(">HI", 7, 77)]


def test_unknown_calls_get_an_error_when_they_wait_for_one() -> None:
    p = Peer()
    p.connect()
    p.take_commands()
    (notice,) = p.command("_checkbw", 9.0, None)
    assert isinstance(notice, Notice) and notice.detail == "_checkbw"
    (err,) = p.take_commands()
    assert err[0] == "_error" and err[1] == 9.0


def test_amf3_command_messages_with_amf0_bodies() -> None:
    p = Peer()
    p.handshake()
    payload = b"\x00" + amf0.encode_all(["connect", 1.0, {"app": "live"}])
    (ev,) = p.message(RtmpMessage(MessageType.COMMAND_AMF3, 0, 0, payload, 3))
    assert isinstance(ev, ConnectRequested) and ev.app == "live"
    p.conn.accept_connect()
    with pytest.raises(RtmpProtocolViolation, match="AMF3"):
        p.message(RtmpMessage(MessageType.COMMAND_AMF3, 0, 0, b"\x11\x06", 3))


def test_reject_connect_and_reject_publish() -> None:
    p = Peer()
    p.handshake()
    p.command("connect", 1.0, {"app": "vod"})
    p.conn.reject_connect("unknown application")
    p.flush()
    (err,) = p.take_commands()
    assert err[0] == "_error"
    assert err[3]["code"] == "NetConnection.Connect.Rejected"

    p = Peer()
    p.connect()
    p.publish()
    p.take_commands()
    p.conn.reject_publish(1, "NetStream.Publish.BadName", "invalid stream key")
    p.flush()
    (status,) = p.take_commands()
    assert status[3] == {
        "level": "error",
        "code": "NetStream.Publish.BadName",
        "description": "invalid stream key",
    }
    assert p.conn.publishing_streams() == []


def test_play_is_reported_and_close_stream_ends_cleanly() -> None:
    p = Peer()
    p.connect()
    p.command("createStream", 2.0, None)
    (ev,) = p.command("play", 0.0, None, "x", sid=1)
    assert ev == PlayRequested(1, 0.0)
    p.publish()
    p.conn.accept_publish(2, "ok")
    (fin,) = p.command("closeStream", 0.0, None, sid=2)
    assert fin == PublishFinished(2, "closeStream")


@pytest.mark.parametrize(
    ("values", "error", "match"),
    [
        (["createStream", 2.0, None], RtmpProtocolViolation, "before a successful connect"),
        (["connect", 1.0, None], RtmpProtocolViolation, "command object"),
        (["connect", 1.0, {"tcUrl": "x"}], RtmpProtocolViolation, "'app'"),
        (["connect", "one", {"app": "live"}], RtmpProtocolViolation, "transaction id"),
        ([1.0], RtmpProtocolViolation, "name"),
    ],
)
def test_bad_commands_before_connect(
    values: list[AmfValue], error: type[Exception], match: str
) -> None:
    p = Peer()
    p.handshake()
    with pytest.raises(error, match=match):
        p.command(*values)


def test_bad_commands_after_connect() -> None:
    p = Peer()
    p.connect()
    with pytest.raises(RtmpProtocolViolation, match="second connect"):
        p.command("connect", 1.0, {"app": "live"})
    p = Peer()
    p.connect()
    with pytest.raises(RtmpProtocolViolation, match="never created"):
        p.command("publish", 0.0, None, "key", sid=7)
    p = Peer()
    p.connect()
    p.publish()
    with pytest.raises(RtmpProtocolViolation, match="already publishing"):
        p.command("publish", 0.0, None, "key", sid=1)
    p = Peer()
    p.connect()
    p.command("createStream", 2.0, None)
    with pytest.raises(RtmpProtocolViolation, match="stream name"):
        p.command("publish", 0.0, None, 5.0, sid=1)
    p = Peer()
    p.connect()
    with pytest.raises(AmfDecodeError):
        p.message(RtmpMessage(20, 0, 0, b"\x02\x00\x05ab", 3))
    with pytest.raises(RtmpProtocolViolation, match="window"):
        p.message(RtmpMessage(MessageType.WINDOW_ACK_SIZE, 0, 0, b"\x00\x00\x00\x00", 2))


def test_stream_count_limit() -> None:
    p = Peer(ConnectionLimits(max_streams=2))
    p.connect()
    p.command("createStream", 2.0, None)
    p.command("createStream", 3.0, None)
    with pytest.raises(LimitExceeded):
        p.command("createStream", 4.0, None)


def test_bad_data_messages_are_noticed_not_fatal() -> None:
    p = Peer()
    p.connect()
    p.publish()
    p.conn.accept_publish(1, "ok")
    (bad,) = p.message(RtmpMessage(18, 1, 0, b"\x02\x00\x09trunc", 4))
    assert isinstance(bad, Notice) and bad.kind == "bad_data_message"
    (other,) = p.message(RtmpMessage(18, 1, 0, amf0.encode_all(["onCuePoint", {}]), 4))
    assert isinstance(other, Notice) and other.detail == "onCuePoint"


def test_usage_errors_are_ours() -> None:
    p = Peer()
    p.handshake()
    with pytest.raises(RtmpUsageError):
        p.conn.accept_connect()
    with pytest.raises(RtmpUsageError):
        p.conn.reject_connect("x")
    with pytest.raises(RtmpUsageError):
        p.conn.accept_publish(1, "nothing pending")
    with pytest.raises(RtmpUsageError):
        p.conn.end_publish(1, "not publishing")
    p.conn.close()
    with pytest.raises(RtmpUsageError):
        p.conn.receive_data(b"x")


def recorded_client_bytes() -> bytes:
    """Everything a well-behaved publisher sends after the handshake, as one byte string."""
    w = ChunkWriter()
    out = w.set_chunk_size(256)

    def cmd(*values: AmfValue, sid: int = 0, csid: int = 3) -> bytes:
        return w.write(RtmpMessage(20, sid, 0, amf0.encode_all(list(values)), csid))

    out += cmd("connect", 1.0, {"app": "live/lv_1", "tcUrl": "rtmp://h/live/lv_1"})
    out += cmd("releaseStream", 2.0, None, "key") + cmd("FCPublish", 3.0, None, "key")
    out += cmd("createStream", 4.0, None)
    out += cmd("publish", 5.0, None, "key", "live", sid=1, csid=4)
    meta = amf0.encode_all(["@setDataFrame", "onMetaData", EcmaArray({"width": 1.0})])
    out += w.write(RtmpMessage(18, 1, 0, meta, 4))
    out += w.write(RtmpMessage(MessageType.WINDOW_ACK_SIZE, 0, 0, struct.pack(">I", 500), 2))
    out += w.write(RtmpMessage(MessageType.USER_CONTROL, 0, 0, struct.pack(">HI", 6, 1), 2))
    for i in range(5):
        out += w.write(RtmpMessage(9, 1, i * 33, AVC_KEY + bytes(300), 6))
        out += w.write(RtmpMessage(8, 1, i * 23, AAC_SEQ, 4))
    out += cmd("FCUnpublish", 6.0, None, "key") + cmd("deleteStream", 7.0, None, 1.0)
    return out


RECORDED = recorded_client_bytes()


def drive(data: bytes, splits: list[int]) -> list[Event]:
    """Feed bytes after a handshake, accepting every request, as the server would."""
    seen: list[Event] = []
    conn = ServerConnection(ConnectionLimits(max_message_size=4096, max_chunk_size=4096))
    conn.receive_data(build_c0c1() + bytes(HANDSHAKE_SIZE))
    pos, i = 0, 0
    while pos < len(data):
        step = splits[i % len(splits)]
        for ev in conn.receive_data(data[pos : pos + step]):
            seen.append(ev)
            for e in [ev, *(conn.accept_connect() if isinstance(ev, ConnectRequested) else [])]:
                if isinstance(e, PublishRequested):
                    conn.accept_publish(e.stream_id, "ok")
        conn.data_to_send()
        pos += step
        i += 1
    return seen


def test_recorded_session_is_valid() -> None:
    kinds = [type(e).__name__ for e in drive(RECORDED, [7])]
    assert kinds == ["ConnectRequested", "PublishRequested", "MetadataReceived"] + [
        "MediaReceived"
    ] * 10 + ["PublishFinished"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(RECORDED) - 1), st.integers(0, 255)), min_size=1, max_size=4
    ),
    st.lists(st.integers(1, 200), min_size=1, max_size=5),
)
def test_mutated_sessions_only_raise_peer_errors(
    flips: list[tuple[int, int]], splits: list[int]
) -> None:
    data = bytearray(RECORDED)
    for index, value in flips:
        data[index] = value
    try:
        drive(bytes(data), splits)
    except RtmpPeerError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_after_handshake_only_raise_peer_errors(data: bytes) -> None:
    try:
        drive(data, [len(data) or 1])
    except RtmpPeerError:
        pass


def test_commands_pipelined_behind_connect_wait_for_the_answer() -> None:
    p = Peer()
    p.handshake()
    w = p.writer

    def cmd(*values: AmfValue, sid: int = 0, csid: int = 3) -> bytes:
        return w.write(RtmpMessage(20, sid, 0, amf0.encode_all(list(values)), csid))

    burst = (
        cmd("connect", 1.0, {"app": "live/lv_1"})
        + cmd("createStream", 2.0, None)
        + cmd("publish", 0.0, None, "key", "live", sid=1, csid=4)
        + w.write(RtmpMessage(MessageType.USER_CONTROL, 0, 0, struct.pack(">HI", 6, 5), 2))
    )
    (ev,) = p.send(burst)
    assert isinstance(ev, ConnectRequested)
    p.flush()
    assert [m.type_id for m in p.replies] == [4], "ping answered at once, commands wait"
    more = p.conn.accept_connect()
    assert [type(e) for e in more] == [PublishRequested]
    p.flush()
    assert [c[0] for c in p.take_commands()] == ["_result", "_result"]


def test_rejected_connect_drops_pipelined_commands_and_bounds_them() -> None:
    p = Peer()
    p.handshake()
    p.command("connect", 1.0, {"app": "vod"})
    p.command("createStream", 2.0, None)
    p.conn.reject_connect("unknown application")
    p.flush()
    assert [c[0] for c in p.take_commands()] == ["_error"]
    p = Peer()
    p.handshake()
    p.command("connect", 1.0, {"app": "live"})
    with pytest.raises(LimitExceeded, match="before connect"):
        for _ in range(100):
            p.command("createStream", 2.0, None)
