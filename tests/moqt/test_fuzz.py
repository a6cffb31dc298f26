"""Random input never breaks a Session: whatever bytes arrive on the control stream,
on unidirectional or bidirectional streams or as datagrams, the session either waits
for more or closes once with a draft error code - never another exception, never
INTERNAL_ERROR (which would mean a bug of ours), never a hang."""

from __future__ import annotations

import os

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from moqt import messages as m
from moqt._buffer import Buffer, encode_varint
from moqt.errors import LocalError, SessionCloseCode
from moqt.events import Event, SessionClosed
from moqt.session import Session
from moqt.types import GroupOrder, Location, SubscriptionFilter
from moqt.version import DRAFT_14, DRAFT_16
from tests.moqt.harness import RawPeer, session_pair

VERSIONS = [pytest.param(DRAFT_16, id="d16"), pytest.param(DRAFT_14, id="d14")]
DRAFT_CODES = {int(c) for c in SessionCloseCode} - {int(SessionCloseCode.INTERNAL_ERROR)}
# MOQT_FUZZ_EXAMPLES raises the effort for a longer local hunt.
FUZZ = settings(
    max_examples=int(os.environ.get("MOQT_FUZZ_EXAMPLES", "250")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Checker:
    """Feeds one session and checks every answer against the fuzz rule."""

    def __init__(self, peer: RawPeer) -> None:
        self.peer = peer
        self.closed: SessionClosed | None = None

    def check(self, events: list[Event]) -> None:
        if self.closed is not None:
            assert events == [], "input after close produced events"
            return
        closes = [e for e in events if isinstance(e, SessionClosed)]
        if closes:
            assert len(closes) == 1 and events[-1] is closes[0]
            close = closes[0]
            assert close.code in DRAFT_CODES, close
            assert not close.by_peer
            assert self.peer.transport.closed == (close.code, close.reason)
            self.closed = close

    def stream(self, stream_id: int, data: bytes, fin: bool = False) -> None:
        self.check(self.peer.session.stream_data_received(stream_id, data, fin, 0.0))

    def datagram(self, data: bytes) -> None:
        self.check(self.peer.session.datagram_received(data, 0.0))

    def reset(self, stream_id: int) -> None:
        self.check(self.peer.session.stream_reset(stream_id, 0, 0.0))

    def stop(self, stream_id: int) -> None:
        self.check(self.peer.session.stop_sending_received(stream_id, 0, 0.0))

    def timer(self, now: float) -> None:
        self.check(self.peer.session.handle_timer(now))


def _ready(version: int, is_client: bool) -> Checker:
    peer = RawPeer(version, is_client=is_client, max_object_size=4096)
    peer.setup()
    events = peer.take()
    assert not any(isinstance(e, SessionClosed) for e in events)
    checker = Checker(peer)
    if is_client:
        # Give the fuzzer live state to hit: a subscription, a fetch, a namespace request.
        sub = peer.session.subscribe((b"a",), b"t")
        peer.session.fetch((b"a",), b"t", Location(0, 0), Location(5, 0))
        peer.session.publish_namespace((b"a",))
        order = None if version == DRAFT_16 else GroupOrder.ASCENDING
        ok = m.SubscribeOk(sub, 1, group_order=order)
        checker.check(peer.feed(0, m.encode_control(ok, version)))
    return checker


chunks = st.lists(st.binary(min_size=0, max_size=64), min_size=1, max_size=8)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("is_client", [False, True], ids=["server", "client"])
@FUZZ
@given(data=chunks, fin=st.booleans())
def test_random_bytes_on_the_control_stream(
    version: int, is_client: bool, data: list[bytes], fin: bool
) -> None:
    checker = _ready(version, is_client)
    for i, chunk in enumerate(data):
        checker.stream(0, chunk, fin and i == len(data) - 1)
    if fin:
        # Closing the control stream always ends the session.
        assert checker.closed is not None


def _frames(version: int) -> st.SearchStrategy[bytes]:
    """Correctly framed control messages of every type of ``version``, random payloads."""
    types = sorted(m.message_types(version))
    return st.builds(
        lambda t, payload: encode_varint(t) + len(payload).to_bytes(2, "big") + payload,
        st.sampled_from(types),
        st.binary(max_size=40),
    )


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("is_client", [False, True], ids=["server", "client"])
@FUZZ
@given(st.data())
def test_framed_messages_with_random_payloads(
    version: int, is_client: bool, data: st.DataObject
) -> None:
    checker = _ready(version, is_client)
    frames = data.draw(st.lists(_frames(version), min_size=1, max_size=12))
    for frame in frames:
        checker.stream(0, frame)


@pytest.mark.parametrize("version", VERSIONS)
@FUZZ
@given(data=chunks)
def test_random_bytes_before_setup(version: int, data: list[bytes]) -> None:
    peer = RawPeer(version)
    checker = Checker(peer)
    for chunk in data:
        checker.stream(0, chunk)


_uni_ops = st.lists(
    st.tuples(
        st.sampled_from(["data", "fin", "reset", "datagram", "stop", "timer"]),
        st.integers(0, 3),
        st.binary(max_size=48),
    ),
    min_size=1,
    max_size=16,
)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("is_client", [False, True], ids=["server", "client"])
@FUZZ
@given(
    ops=_uni_ops, prefix=st.sampled_from([b"", b"\x05", b"\x10\x01", b"\x14\x01\x00", b"\x3d\x01"])
)
def test_random_data_streams_and_datagrams(
    version: int, is_client: bool, ops: list[tuple[str, int, bytes]], prefix: bytes
) -> None:
    checker = _ready(version, is_client)
    peer_uni = 3 if is_client else 2  # streams the peer may open
    peer_bidi = 1 if is_client else 4
    now = 0.0
    for op, index, payload in ops:
        uni = peer_uni + 4 * index
        if op == "data":
            checker.stream(uni, prefix + payload if index % 2 == 0 else payload)
        elif op == "fin":
            checker.stream(uni, payload, True)
        elif op == "reset":
            checker.reset(uni if index else peer_bidi)
        elif op == "datagram":
            checker.datagram(payload)
        elif op == "stop":
            checker.stop(uni - 1 if is_client else uni + 1)
        else:
            now += 1.0
            checker.timer(now)


@pytest.mark.parametrize("version", VERSIONS)
@FUZZ
@given(chunks)
def test_random_bidi_streams(version: int, data: list[bytes]) -> None:
    checker = _ready(version, False)
    for i, chunk in enumerate(data):
        checker.stream(4 + 4 * (i % 2), chunk, i == len(data) - 1)


def _transcript(version: int) -> list[tuple[str, int, bytes, bool]]:
    """What a busy client sends a server: setup, requests of every kind, data."""
    pair = session_pair(version)
    client = pair.client
    sub = client.subscribe((b"a",), b"t", filter=SubscriptionFilter.largest_object())
    client.fetch((b"a",), b"t", Location(0, 0), Location(3, 0))
    client.track_status((b"a",), b"t")
    client.publish_namespace((b"a",))
    client.subscribe_namespace((b"b",))
    pub = client.publish((b"a",), b"p", track_alias=3)
    h = client.open_subgroup(pub, 1, 0)
    client.write_object(h, 0, b"payload", extensions=((2, 1),))
    client.write_object(h, 1, b"")
    client.end_subgroup(h)
    client.send_object_datagram(pub, 2, 0, b"dg")
    client.update_subscription(sub, priority=3)
    client.unsubscribe(sub)
    # Replay the connection from the start: setup first.
    ops = [
        (op.kind, op.stream_id, op.data, op.fin)
        for op in pair.c.transport.outbox
        if op.kind in ("data", "datagram")
    ]
    setup = [("data", 0, bytes(pair.c.transport.sent_bytes[0][: _setup_len(version, pair)]), False)]
    return setup + ops


def _setup_len(version: int, pair: object) -> int:
    raw = bytes(pair.c.transport.sent_bytes[0])  # type: ignore[attr-defined]
    buf = Buffer(raw)
    m.decode_control(buf, version)
    return buf.position


@pytest.mark.parametrize("version", VERSIONS)
@FUZZ
@given(st.data())
def test_mutated_session_transcripts(version: int, data: st.DataObject) -> None:
    ops = _transcript(version)
    index = data.draw(st.integers(0, len(ops) - 1), label="op")
    kind, stream_id, raw, fin = ops[index]
    if raw:
        pos = data.draw(st.integers(0, len(raw) - 1), label="pos")
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "drop"]), label="action")
        if action == "flip":
            raw = raw[:pos] + bytes([raw[pos] ^ data.draw(st.integers(1, 255))]) + raw[pos + 1 :]
        elif action == "cut":
            raw = raw[:pos]
        elif action == "insert":
            raw = raw[:pos] + data.draw(st.binary(min_size=1, max_size=8)) + raw[pos:]
        else:
            raw = raw[:pos] + raw[pos + 1 :]
    ops[index] = (kind, stream_id, raw, fin)
    peer = RawPeer(DRAFT_14 if version == DRAFT_14 else DRAFT_16, max_object_size=4096)
    checker = Checker(peer)
    for kind, stream_id, raw, fin in ops:
        if kind == "data":
            checker.stream(stream_id, raw, fin)
        else:
            checker.datagram(raw)
        # Answer what can be answered so later messages meet live state.
        for ev in peer.take():
            answer = getattr(peer.session, _ANSWERS.get(type(ev).__name__, ""), None)
            if answer is not None and not peer.session.closed:
                try:
                    answer(ev.request_id)  # type: ignore[attr-defined]
                except LocalError:
                    pass
    checker.timer(100.0)


_ANSWERS = {
    "SubscribeRequested": "accept_subscribe",
    "PublishNamespaceRequested": "accept_publish_namespace",
    "SubscribeNamespaceRequested": "accept_subscribe_namespace",
    "PublishRequested": "accept_publish",
    "TrackStatusRequested": "answer_track_status",
}


@pytest.mark.parametrize("version", VERSIONS)
def test_unmutated_transcript_exercises_every_request_kind(version: int) -> None:
    peer = RawPeer(version)
    seen: list[str] = []
    for kind, stream_id, raw, fin in _transcript(version):
        if kind == "data":
            events = peer.session.stream_data_received(stream_id, raw, fin, 0.0)
        else:
            events = peer.session.datagram_received(raw, 0.0)
        for ev in events:
            seen.append(type(ev).__name__)
            answer = getattr(peer.session, _ANSWERS.get(type(ev).__name__, ""), None)
            if answer is not None:
                answer(ev.request_id)  # type: ignore[attr-defined]
    assert seen == [
        "SetupCompleted",
        "SubscribeRequested",
        "FetchRequested",
        "TrackStatusRequested",
        "PublishNamespaceRequested",
        "SubscribeNamespaceRequested",
        "PublishRequested",
        "SubgroupStreamOpened",
        "ObjectReceived",
        "ObjectReceived",
        "SubgroupStreamEnded",
        "ObjectReceived",
        "SubscriptionUpdated",
        "Unsubscribed",
    ]


def _client_requests(client: Session) -> dict[str, int]:
    return {
        "sub": client.subscribe((b"a",), b"t", filter=SubscriptionFilter.largest_object()),
        "fetch": client.fetch((b"a",), b"t", Location(0, 0), Location(3, 0)),
        "status": client.track_status((b"a",), b"t"),
        "ns": client.subscribe_namespace((b"b",)),
    }


def _server_transcript(version: int) -> list[tuple[str, int, bytes, bool]]:
    """What a busy server sends back to ``_client_requests``: answers, data, endings."""
    pair = session_pair(version)
    ids = _client_requests(pair.client)
    pair.deliver_until_idle()
    pair.s.transport.outbox.clear()
    server = pair.server
    server.accept_subscribe(ids["sub"], track_alias=9, largest=Location(2, 1))
    h = server.open_subgroup(ids["sub"], 3, 0)
    server.write_object(h, 0, b"obj", extensions=((4, 2),))
    server.end_subgroup(h)
    server.send_object_datagram(ids["sub"], 4, 0, b"dg")
    server.accept_fetch(ids["fetch"], end_location=Location(3, 0))
    fh = server.open_fetch_stream(ids["fetch"])
    server.write_fetch_object(fh, 0, 0, 0, b"f0")
    server.write_fetch_object(fh, 1, 0, 2, b"f1")
    server.end_fetch_stream(fh)
    server.answer_track_status(ids["status"], largest=Location(2, 1))
    server.accept_subscribe_namespace(ids["ns"])
    if version == DRAFT_16:
        server.announce_namespace(ids["ns"], (b"b", b"c"))
    server.publish((b"a",), b"pushed", track_alias=11)
    server.publish_done(ids["sub"])
    return [
        (op.kind, op.stream_id, op.data, op.fin)
        for op in pair.s.transport.outbox
        if op.kind in ("data", "datagram")
    ]


@pytest.mark.parametrize("version", VERSIONS)
@FUZZ
@given(st.data())
def test_mutated_server_transcripts_at_a_client(version: int, data: st.DataObject) -> None:
    ops = _server_transcript(version)
    index = data.draw(st.integers(0, len(ops) - 1), label="op")
    kind, stream_id, raw, fin = ops[index]
    if raw:
        pos = data.draw(st.integers(0, len(raw) - 1), label="pos")
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]), label="action")
        if action == "flip":
            raw = raw[:pos] + bytes([raw[pos] ^ data.draw(st.integers(1, 255))]) + raw[pos + 1 :]
        elif action == "cut":
            raw = raw[:pos]
        else:
            raw = raw[:pos] + data.draw(st.binary(min_size=1, max_size=8)) + raw[pos:]
    ops[index] = (kind, stream_id, raw, fin)
    peer = RawPeer(version, is_client=True, max_object_size=4096)
    peer.setup()
    _client_requests(peer.session)
    peer.take()
    checker = Checker(peer)
    for kind, stream_id, raw, fin in ops:
        if kind == "data":
            checker.stream(stream_id, raw, fin)
        else:
            checker.datagram(raw)
    checker.timer(100.0)


@pytest.mark.parametrize("version", VERSIONS)
def test_unmutated_server_transcript_is_clean(version: int) -> None:
    peer = RawPeer(version, is_client=True)
    peer.setup()
    _client_requests(peer.session)
    peer.take()
    seen: list[str] = []
    for kind, stream_id, raw, fin in _server_transcript(version):
        if kind == "data":
            events = peer.session.stream_data_received(stream_id, raw, fin, 0.0)
        else:
            events = peer.session.datagram_received(raw, 0.0)
        seen += [type(ev).__name__ for ev in events]
    namespace = ["NamespaceAnnounced"] if version == DRAFT_16 else []
    assert seen == [
        "SubscribeAccepted",
        "SubgroupStreamOpened",
        "ObjectReceived",
        "SubgroupStreamEnded",
        "ObjectReceived",
        "FetchAccepted",
        "ObjectReceived",
        "ObjectReceived",
        "FetchStreamEnded",
        "TrackStatusReceived",
        "SubscribeNamespaceAccepted",
        *namespace,
        "PublishRequested",
        "PublishDoneReceived",
    ]
