"""FETCH: standalone, relative and absolute joining; FETCH_OK; errors; FETCH_CANCEL; streams."""

from __future__ import annotations

import pytest

from moqt import messages as m
from moqt.data import FetchWriter, Object
from moqt.errors import DataStreamResetCode, LocalError, RequestErrorCode, SessionCloseCode
from moqt.events import (
    FetchAccepted,
    FetchCancelled,
    FetchRequested,
    FetchStreamEnded,
    FetchStreamReset,
    ObjectReceived,
    ObjectSource,
    RequestKind,
    RequestRejected,
    SubscriptionUpdated,
)
from moqt.types import FetchType, GroupOrder, Location, SubscriptionFilter
from moqt.version import DRAFT_14, DRAFT_16
from tests.moqt.harness import RawPeer, SessionPair, closed_with, events_of, session_pair

VERSIONS = [pytest.param(DRAFT_16, id="d16"), pytest.param(DRAFT_14, id="d14")]
NS = (b"vod",)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("chunk", [None, 1])
def test_standalone_fetch(version: int, chunk: int | None) -> None:
    pair = session_pair(version, chunk_size=chunk)
    pair.take()
    rid = pair.client.fetch(
        NS, b"t", Location(1, 0), Location(3, 0), priority=4, group_order=GroupOrder.DESCENDING
    )
    pair.deliver_until_idle()
    _, s = pair.take()
    (req,) = events_of(s, FetchRequested)
    assert req.fetch_type is FetchType.STANDALONE
    assert (req.namespace, req.name, req.start, req.end) == (
        NS,
        b"t",
        Location(1, 0),
        Location(3, 0),
    )
    assert (req.subscriber_priority, req.group_order) == (4, GroupOrder.DESCENDING)
    # Objects may flow before FETCH_OK.
    h = pair.server.open_fetch_stream(rid)
    pair.server.write_fetch_object(h, 2, 0, 0, b"g2o0", priority=7)
    pair.server.write_fetch_object(h, 2, 0, 1, b"g2o1", priority=7, extensions=((4, 9),))
    pair.server.write_fetch_object(h, 1, 1, 5, b"g1o5", priority=7)
    pair.server.accept_fetch(rid, end_location=Location(3, 0), group_order=GroupOrder.DESCENDING)
    pair.server.end_fetch_stream(h)
    pair.deliver_until_idle()
    c, _ = pair.take()
    objs = events_of(c, ObjectReceived)
    assert [(o.group_id, o.subgroup_id, o.object_id, o.payload) for o in objs] == [
        (2, 0, 0, b"g2o0"),
        (2, 0, 1, b"g2o1"),
        (1, 1, 5, b"g1o5"),
    ]
    assert all(o.source is ObjectSource.FETCH and o.request_id == rid for o in objs)
    assert objs[1].extensions == ((4, 9),)
    (ok,) = events_of(c, FetchAccepted)
    assert ok.end_location == Location(3, 0) and ok.group_order is GroupOrder.DESCENDING
    assert events_of(c, FetchStreamEnded) == [FetchStreamEnded(rid, h.stream_id)]
    # The fetch is over: cancelling it now is a no-op, never a FETCH_CANCEL.
    pair.client.fetch_cancel(rid)
    assert m.encode_control(m.FetchCancel(rid), version) not in bytes(
        pair.c.transport.sent_bytes[0]
    )


def _joined(pair: SessionPair, largest: Location | None) -> int:
    sub = pair.client.subscribe(NS, b"live", filter=SubscriptionFilter.largest_object())
    pair.deliver_until_idle()
    pair.server.accept_subscribe(sub, largest=largest)
    pair.deliver_until_idle()
    pair.take()
    return sub


@pytest.mark.parametrize("version", VERSIONS)
def test_relative_and_absolute_joining_fetch_ranges(version: int) -> None:
    pair = session_pair(version)
    pair.take()
    sub = _joined(pair, Location(10, 3))
    rel = pair.client.joining_fetch(sub, 2)
    ab = pair.client.joining_fetch(sub, 4, absolute=True)
    far = pair.client.joining_fetch(sub, 50)  # clamps at group 0
    pair.deliver_until_idle()
    _, s = pair.take()
    got = {e.request_id: e for e in events_of(s, FetchRequested)}
    # "Joining Fetch Range Calculation": end = {largest.group, largest.object + 1}.
    assert (got[rel].fetch_type, got[rel].start, got[rel].end) == (
        FetchType.RELATIVE_JOINING,
        Location(8, 0),
        Location(10, 4),
    )
    assert (got[ab].start, got[ab].end) == (Location(4, 0), Location(10, 4))
    assert got[far].start == Location(0, 0)
    assert got[rel].namespace == NS and got[rel].name == b"live"
    assert got[rel].joining_request_id == sub and got[rel].joining_start == 2


@pytest.mark.parametrize("version", VERSIONS)
def test_joining_fetch_without_content_is_invalid_range(version: int) -> None:
    pair = session_pair(version)
    pair.take()
    sub = _joined(pair, None)
    rid = pair.client.joining_fetch(sub, 1)
    pair.deliver_until_idle()
    c, s = pair.take()
    assert not events_of(s, FetchRequested)
    (rej,) = events_of(c, RequestRejected)
    assert rej.request_id == rid and rej.error is RequestErrorCode.INVALID_RANGE


@pytest.mark.parametrize("version", VERSIONS)
def test_joining_fetch_for_unknown_subscription(version: int) -> None:
    peer = RawPeer(version)
    peer.setup()
    peer.send(m.Fetch(0, FetchType.RELATIVE_JOINING, joining=m.JoiningFetch(0, 1)))
    assert not events_of(peer.take(), FetchRequested)
    (reply,) = peer.received()[1:]
    expected = 0x32 if version == DRAFT_16 else 0x7
    assert reply.error_code == expected  # type: ignore[attr-defined]


def test_joining_fetch_for_a_non_largest_object_subscription_is_a_violation() -> None:
    peer = RawPeer(DRAFT_16)
    peer.setup()
    peer.send(m.Subscribe(0, NS, b"t", filter=SubscriptionFilter.next_group_start()))
    peer.send(m.Fetch(2, FetchType.ABSOLUTE_JOINING, joining=m.JoiningFetch(0, 1)))
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION


@pytest.mark.parametrize("version", VERSIONS)
def test_fetch_cancel_resets_the_stream(version: int) -> None:
    pair = session_pair(version)
    pair.take()
    rid = pair.client.fetch(NS, b"t", Location(0, 0), Location(9, 0))
    pair.deliver_until_idle()
    h = pair.server.open_fetch_stream(rid)
    pair.server.write_fetch_object(h, 0, 0, 0, b"x")
    pair.client.fetch_cancel(rid)
    pair.deliver_until_idle()
    c, s = pair.take()
    assert events_of(s, FetchCancelled) == [FetchCancelled(rid)]
    assert h.closed and pair.s.transport.resets[h.stream_id] == DataStreamResetCode.CANCELLED
    assert not events_of(c, ObjectReceived)  # the client stopped reading it
    # Late answers from the server are dropped quietly.
    pair.server.accept_fetch(rid, end_location=Location(9, 0))
    pair.server.write_fetch_object(h, 0, 0, 1, b"y")
    assert not pair.server.closed and not pair.client.closed


@pytest.mark.parametrize("version", VERSIONS)
def test_fetch_rejected_and_stream_reset(version: int) -> None:
    pair = session_pair(version)
    pair.take()
    a = pair.client.fetch(NS, b"t", Location(5, 0), Location(9, 0))
    b = pair.client.fetch(NS, b"t", Location(0, 0), Location(1, 0))
    pair.deliver_until_idle()
    pair.server.reject_request(a, RequestErrorCode.INVALID_RANGE, "past the end")
    pair.server.accept_fetch(b, end_location=Location(1, 0))
    h = pair.server.open_fetch_stream(b)
    pair.server.reset_fetch_stream(h, DataStreamResetCode.UNKNOWN_OBJECT_STATUS)
    pair.deliver_until_idle()
    c, _ = pair.take()
    (rej,) = events_of(c, RequestRejected)
    assert rej.kind is RequestKind.FETCH and rej.error is RequestErrorCode.INVALID_RANGE
    assert rej.code == (0x11 if version == DRAFT_16 else 0x5)
    assert events_of(c, FetchStreamReset) == [
        FetchStreamReset(b, h.stream_id, DataStreamResetCode.UNKNOWN_OBJECT_STATUS)
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_fetch_ok_before_the_start_is_a_violation(version: int) -> None:
    peer = RawPeer(version, is_client=True)
    peer.setup()
    rid = peer.session.fetch(NS, b"t", Location(5, 3), Location(7, 0))
    order = None if version == DRAFT_16 else GroupOrder.ASCENDING
    peer.send(m.FetchOk(rid, False, Location(4, 9), order))
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION


@pytest.mark.parametrize("version", VERSIONS)
def test_fetch_stream_for_unknown_request_is_a_violation(version: int) -> None:
    peer = RawPeer(version, is_client=True)
    peer.setup()
    writer = FetchWriter(8, version)
    data = writer.header_bytes() + writer.write_object(Object(0, 0, 0, 1, b"x"))
    peer.feed(3, data)
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION


@pytest.mark.parametrize("version", VERSIONS)
def test_truncated_fetch_stream_is_a_violation(version: int) -> None:
    peer = RawPeer(version, is_client=True)
    peer.setup()
    rid = peer.session.fetch(NS, b"t", Location(0, 0), Location(1, 0))
    writer = FetchWriter(rid, version)
    data = writer.header_bytes() + writer.write_object(Object(0, 0, 0, 1, b"hello"))
    peer.feed(3, data[:-2], fin=True)
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION


def test_draft16_request_update_of_a_fetch_is_answered_by_the_session() -> None:
    peer = RawPeer(DRAFT_16)
    peer.setup()
    standalone = m.StandaloneFetch(NS, b"t", Location(0, 0), Location(2, 0))
    peer.send(m.Fetch(0, FetchType.STANDALONE, standalone=standalone))
    params = m.MessageParameters.build(subscriber_priority=3)
    peer.send(m.RequestUpdate(2, 0, params))
    peer.send(m.RequestUpdate(4, 7))  # never issued: a violation
    replies = peer.received()
    assert any(isinstance(r, m.RequestOk) and r.request_id == 2 for r in replies)
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION


@pytest.mark.parametrize("version", VERSIONS)
def test_fetch_range_must_not_end_before_it_starts(version: int) -> None:
    pair = session_pair(version)
    with pytest.raises(LocalError):
        pair.client.fetch(NS, b"t", Location(5, 3), Location(5, 2))
    with pytest.raises(LocalError):
        pair.client.fetch(NS, b"t", Location(5, 3), Location(4, 0))
    # {5, 0} is "all of group 5", which covers a start inside group 5.
    assert pair.client.fetch(NS, b"t", Location(5, 3), Location(5, 0)) == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_joining_fetch_after_an_update_of_a_largest_object_subscription(version: int) -> None:
    # A draft-14 SUBSCRIBE_UPDATE always carries a start location, turning the filter
    # absolute; joining is still allowed because the SUBSCRIBE had LargestObject.
    pair = session_pair(version)
    pair.take()
    sub = _joined(pair, Location(6, 2))
    pair.client.update_subscription(sub, priority=9)
    pair.deliver_until_idle()
    _, s = pair.take()
    if version == DRAFT_14:
        # The update named the subscription's effective start {6, 3}.
        (upd,) = events_of(s, SubscriptionUpdated)
        assert upd.filter == SubscriptionFilter.absolute_start(Location(6, 3))
    rid = pair.client.joining_fetch(sub, 1)
    pair.deliver_until_idle()
    _, s = pair.take()
    assert not pair.server.closed
    (req,) = events_of(s, FetchRequested)
    assert (req.request_id, req.start) == (rid, Location(5, 0))
