"""Subscriptions: SUBSCRIBE with every filter, SUBSCRIBE_OK, errors, updates, UNSUBSCRIBE,
PUBLISH_DONE, and the objects that flow on subgroup streams and datagrams."""

from __future__ import annotations

import pytest

from moqt import messages as m
from moqt.data import Object, ObjectDatagram, SubgroupHeader, SubgroupWriter, encode_datagram
from moqt.errors import (
    DataStreamResetCode,
    LocalError,
    PublishDoneCode,
    RequestErrorCode,
    SessionCloseCode,
)
from moqt.events import (
    ObjectReceived,
    ObjectSource,
    PublishDoneReceived,
    RequestKind,
    RequestRejected,
    SubgroupStreamEnded,
    SubgroupStreamOpened,
    SubgroupStreamReset,
    SubgroupStreamStopped,
    SubscribeAccepted,
    SubscribeRequested,
    SubscriptionUpdated,
    Unsubscribed,
    UpdateAccepted,
)
from moqt.types import FilterType, GroupOrder, Location, ObjectStatus, SubscriptionFilter
from moqt.version import DRAFT_14, DRAFT_16
from tests.moqt.harness import RawPeer, SessionPair, closed_with, events_of, session_pair

VERSIONS = [pytest.param(DRAFT_16, id="d16"), pytest.param(DRAFT_14, id="d14")]
NS = (b"live", b"room")

FILTERS = [
    SubscriptionFilter.next_group_start(),
    SubscriptionFilter.largest_object(),
    SubscriptionFilter.absolute_start(Location(5, 2)),
    SubscriptionFilter.absolute_range(Location(5, 2), 9),
]


def _subscribed(pair: SessionPair, **kwargs: object) -> tuple[int, int]:
    rid = pair.client.subscribe(NS, b"video", **kwargs)  # type: ignore[arg-type]
    pair.deliver_until_idle()
    alias = pair.server.accept_subscribe(rid, largest=Location(3, 7))
    pair.deliver_until_idle()
    pair.take()
    return rid, alias


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: f.type.name)
def test_subscribe_carries_each_filter(version: int, flt: SubscriptionFilter) -> None:
    pair = session_pair(version, chunk_size=1)
    pair.take()
    rid = pair.client.subscribe(
        NS,
        b"video",
        filter=flt,
        priority=7,
        group_order=GroupOrder.DESCENDING,
        forward=False,
        delivery_timeout=250,
        auth_token=b"jwt",
    )
    pair.deliver_until_idle()
    _, s = pair.take()
    (req,) = events_of(s, SubscribeRequested)
    assert (req.request_id, req.namespace, req.name) == (rid, NS, b"video")
    assert req.filter == flt
    assert req.subscriber_priority == 7
    assert req.group_order is GroupOrder.DESCENDING
    assert req.forward is False
    assert req.delivery_timeout == 250
    assert [t.value for t in req.auth_tokens] == [b"jwt"]


@pytest.mark.parametrize("version", VERSIONS)
def test_subscribe_ok_then_objects_streams_and_datagrams(version: int) -> None:
    pair = session_pair(version)
    pair.take()
    rid = pair.client.subscribe(NS, b"video")
    pair.deliver_until_idle()
    alias = pair.server.accept_subscribe(
        rid, track_alias=42, expires=3000, group_order=GroupOrder.DESCENDING, largest=Location(3, 7)
    )
    assert alias == 42
    pair.deliver_until_idle()
    c, _ = pair.take()
    assert c == [
        SubscribeAccepted(rid, 42, 3000, GroupOrder.DESCENDING, Location(3, 7), c[0].extensions)  # type: ignore[attr-defined]
    ]

    h = pair.server.open_subgroup(rid, 4, 1, priority=9, end_of_group=True)
    pair.server.write_object(h, 0, b"key", extensions=((0x3C, 2),))
    pair.server.write_object(h, 3, b"delta")
    pair.server.write_object(h, 4, b"", status=ObjectStatus.END_OF_GROUP)
    pair.server.end_subgroup(h)
    pair.server.send_object_datagram(rid, 5, 0, b"dg", priority=3, end_of_group=True)
    pair.deliver_until_idle()
    c, _ = pair.take()
    objs = events_of(c, ObjectReceived)
    assert [(o.group_id, o.subgroup_id, o.object_id, o.payload, o.status) for o in objs] == [
        (4, 1, 0, b"key", ObjectStatus.NORMAL),
        (4, 1, 3, b"delta", ObjectStatus.NORMAL),
        (4, 1, 4, b"", ObjectStatus.END_OF_GROUP),
        (5, None, 0, b"dg", ObjectStatus.NORMAL),
    ]
    assert objs[0].extensions == ((0x3C, 2),)
    assert all(o.request_id == rid and o.track_alias == 42 for o in objs)
    assert [o.publisher_priority for o in objs] == [9, 9, 9, 3]
    assert [o.source for o in objs] == [ObjectSource.SUBGROUP] * 3 + [ObjectSource.DATAGRAM]
    assert objs[3].end_of_group and objs[3].stream_id is None
    assert events_of(c, SubgroupStreamOpened) == [
        SubgroupStreamOpened(rid, h.stream_id, 4, 1, 9, end_of_group=True)
    ]
    assert c.index(events_of(c, SubgroupStreamOpened)[0]) < c.index(objs[0])
    assert events_of(c, SubgroupStreamEnded) == [SubgroupStreamEnded(rid, h.stream_id, 4, 1)]
    assert pair.s.transport.priorities[h.stream_id] == 9


@pytest.mark.parametrize("version", VERSIONS)
def test_rejection_maps_codes_per_draft(version: int) -> None:
    pair = session_pair(version)
    pair.take()
    rid = pair.client.subscribe(NS, b"nope")
    pair.deliver_until_idle()
    pair.server.reject_request(rid, RequestErrorCode.DOES_NOT_EXIST, "no such track")
    pair.deliver_until_idle()
    c, _ = pair.take()
    (rej,) = events_of(c, RequestRejected)
    assert rej.kind is RequestKind.SUBSCRIBE
    assert rej.error is RequestErrorCode.DOES_NOT_EXIST
    # Draft-14 SUBSCRIBE_ERROR's "TRACK_DOES_NOT_EXIST" is 0x4; draft-16's 0x10.
    assert rej.code == (0x10 if version == DRAFT_16 else 0x4)
    assert rej.reason == "no such track"
    # The request is over on both sides: unsubscribing now races with the error and is
    # dropped; sending objects for it is misuse.
    pair.client.unsubscribe(rid)
    assert (
        bytes(pair.c.transport.sent_bytes[0]).count(m.encode_control(m.Unsubscribe(rid), version))
        == 0
    )
    with pytest.raises(LocalError):
        pair.server.open_subgroup(rid, 0)


@pytest.mark.parametrize("version", VERSIONS)
def test_unsubscribe_resets_streams_and_late_data_is_dropped(version: int) -> None:
    pair = session_pair(version)
    rid, _ = _subscribed(pair)
    h = pair.server.open_subgroup(rid, 1)
    pair.server.write_object(h, 0, b"a")
    pair.deliver_until_idle()
    pair.take()
    pair.client.unsubscribe(rid)
    # Late data from the server reaches the client after its UNSUBSCRIBE was sent.
    pair.server.write_object(h, 1, b"late")
    pair.deliver_until_idle()
    c, s = pair.take()
    assert events_of(s, Unsubscribed) == [Unsubscribed(rid)]
    assert not events_of(c, ObjectReceived)
    assert h.closed
    assert pair.s.transport.resets[h.stream_id] == DataStreamResetCode.CANCELLED
    pair.server.write_object(h, 2, b"ignored")  # dropped quietly, not an error
    assert not pair.client.closed and not pair.server.closed


@pytest.mark.parametrize("version", VERSIONS)
def test_publish_done_carries_the_stream_count_and_resets_open_streams(version: int) -> None:
    pair = session_pair(version)
    rid, _ = _subscribed(pair)
    done = pair.server.open_subgroup(rid, 1)
    pair.server.write_object(done, 0, b"x")
    pair.server.end_subgroup(done)
    still_open = pair.server.open_subgroup(rid, 2)
    pair.server.write_object(still_open, 0, b"y")
    pair.server.publish_done(rid, PublishDoneCode.MALFORMED_TRACK, "bad track")
    assert still_open.closed
    pair.deliver_until_idle()
    c, _ = pair.take()
    (fin,) = events_of(c, PublishDoneReceived)
    # MALFORMED_TRACK is 0x7 on the draft-14 wire, reported as the draft-16 value.
    assert (fin.code, fin.stream_count, fin.reason) == (
        PublishDoneCode.MALFORMED_TRACK,
        2,
        "bad track",
    )
    assert events_of(c, SubgroupStreamReset)[0].error_code == DataStreamResetCode.CANCELLED
    # Late objects are accepted for done_linger seconds, then the alias is forgotten.
    assert pair.client.get_timer() == pytest.approx(5.0)
    pair.advance(5.0)
    assert pair.client.get_timer() is None
    late = pair.server.statistics().subgroup_streams_opened
    assert late == 2


@pytest.mark.parametrize("version", VERSIONS)
def test_update_subscription(version: int) -> None:
    pair = session_pair(version)
    rid, _ = _subscribed(pair, filter=SubscriptionFilter.absolute_start(Location(2, 0)))
    uid = pair.client.update_subscription(
        rid, start=Location(4, 0), end_group=8, priority=1, forward=False
    )
    assert uid == rid + 2  # an update consumes a request id
    pair.deliver_until_idle()
    _, s = pair.take()
    (upd,) = events_of(s, SubscriptionUpdated)
    assert upd.request_id == rid and upd.update_request_id == uid
    assert upd.filter == SubscriptionFilter.absolute_range(Location(4, 0), 8)
    assert (upd.subscriber_priority, upd.forward) == (1, False)
    pair.server.accept_update(uid, largest=Location(6, 1))
    pair.deliver_until_idle()
    c, _ = pair.take()
    if version == DRAFT_16:
        assert c == [UpdateAccepted(rid, uid, Location(6, 1))]
    else:
        assert c == []  # draft-14 SUBSCRIBE_UPDATE has no answer
    if version == DRAFT_14:
        with pytest.raises(LocalError):  # draft-14 updates only narrow
            pair.client.update_subscription(rid, start=Location(1, 0))


def test_failed_update_ends_the_subscription_draft16() -> None:
    pair = session_pair(DRAFT_16)
    rid, _ = _subscribed(pair)
    uid = pair.client.update_subscription(rid, forward=False)
    pair.deliver_until_idle()
    pair.take()
    pair.server.reject_request(uid, RequestErrorCode.INTERNAL_ERROR, "cannot")
    pair.deliver_until_idle()
    c, _ = pair.take()
    rej, fin = events_of(c, RequestRejected)[0], events_of(c, PublishDoneReceived)[0]
    assert rej.request_id == uid and rej.kind is RequestKind.REQUEST_UPDATE
    assert fin.request_id == rid and fin.code == PublishDoneCode.UPDATE_FAILED


def test_draft14_update_that_widens_is_a_violation() -> None:
    peer = RawPeer(DRAFT_14)
    peer.setup()
    flt = SubscriptionFilter.absolute_range(Location(5, 0), 9)
    peer.send(m.Subscribe(0, NS, b"t", filter=flt))
    peer.session.accept_subscribe(0)
    peer.take()
    peer.send(m.SubscribeUpdate(2, 0, Location(4, 0), 10))  # start moves back
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION


def test_duplicate_subscription_draft16_is_refused() -> None:
    peer = RawPeer(DRAFT_16)
    peer.setup()
    peer.send(m.Subscribe(0, NS, b"t"))
    peer.send(m.Subscribe(2, NS, b"t"))
    assert len(events_of(peer.take(), SubscribeRequested)) == 1
    replies = peer.received()
    errors = [r for r in replies if isinstance(r, m.RequestError)]
    assert [(e.request_id, e.error_code) for e in errors] == [
        (2, RequestErrorCode.DUPLICATE_SUBSCRIPTION)
    ]


def test_duplicate_subscription_draft14_is_a_violation() -> None:
    peer = RawPeer(DRAFT_14)
    peer.setup()
    peer.send(m.Subscribe(0, NS, b"t"))
    peer.send(m.Subscribe(2, NS, b"t"))
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION


@pytest.mark.parametrize("version", VERSIONS)
def test_duplicate_track_alias_closes(version: int) -> None:
    peer = RawPeer(version, is_client=True)
    peer.setup()
    a = peer.session.subscribe(NS, b"a")
    b = peer.session.subscribe(NS, b"b")
    peer.send(
        m.SubscribeOk(a, 5, group_order=None if version == DRAFT_16 else GroupOrder.ASCENDING)
    )
    peer.send(
        m.SubscribeOk(b, 5, group_order=None if version == DRAFT_16 else GroupOrder.ASCENDING)
    )
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.DUPLICATE_TRACK_ALIAS


@pytest.mark.parametrize("version", VERSIONS)
def test_second_subscribe_ok_is_a_violation(version: int) -> None:
    peer = RawPeer(version, is_client=True)
    peer.setup()
    a = peer.session.subscribe(NS, b"a")
    order = None if version == DRAFT_16 else GroupOrder.ASCENDING
    peer.send(m.SubscribeOk(a, 5, group_order=order))
    peer.send(m.SubscribeOk(a, 6, group_order=order))
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION


def _subgroup_bytes(version: int, alias: int, payloads: list[bytes], fin_group: int = 1) -> bytes:
    writer = SubgroupWriter(SubgroupHeader.for_subgroup(alias, fin_group, 0, 10), version)
    out = writer.header_bytes()
    for i, payload in enumerate(payloads):
        out += writer.write_object(i, payload)
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_data_before_subscribe_ok_is_held_then_delivered(version: int) -> None:
    peer = RawPeer(version, is_client=True)
    peer.setup()
    rid = peer.session.subscribe(NS, b"a")
    # Reordered: the subgroup stream (server uni stream 3) arrives before SUBSCRIBE_OK.
    peer.feed(3, _subgroup_bytes(version, 9, [b"one", b"two"]), fin=True)
    dgram = ObjectDatagram(9, Object(2, None, 0, 10, b"dg"))
    peer.datagram(encode_datagram(dgram, version))
    assert not events_of(peer.take(), ObjectReceived)
    assert peer.session.get_timer() is not None
    order = None if version == DRAFT_16 else GroupOrder.ASCENDING
    peer.send(m.SubscribeOk(rid, 9, group_order=order))
    events = peer.take()
    assert [o.payload for o in events_of(events, ObjectReceived)] == [b"one", b"two", b"dg"]
    assert events_of(events, SubgroupStreamEnded)


@pytest.mark.parametrize("version", VERSIONS)
def test_data_for_an_alias_that_never_appears_is_dropped(version: int) -> None:
    peer = RawPeer(version, is_client=True, alias_wait=1.0)
    peer.setup()
    peer.feed(3, _subgroup_bytes(version, 77, [b"x"]))
    deadline = peer.session.get_timer()
    assert deadline == pytest.approx(1.0)
    assert peer.session.handle_timer(1.5) == []
    assert peer.transport.stops[3] == DataStreamResetCode.CANCELLED
    # Whatever else arrives on that stream is ignored.
    assert peer.feed(3, b"\x00\x01\x02", fin=True) == []
    assert not peer.session.closed


@pytest.mark.parametrize("version", VERSIONS)
def test_object_above_max_object_size_closes(version: int) -> None:
    pair = session_pair(version, client_kwargs={"max_object_size": 16})
    rid, _ = _subscribed(pair)
    h = pair.server.open_subgroup(rid, 1)
    pair.server.write_object(h, 0, b"x" * 17)
    pair.deliver_until_idle()
    c, _ = pair.take()
    close = closed_with(c)
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION
    assert not events_of(c, ObjectReceived)


@pytest.mark.parametrize("version", VERSIONS)
def test_stop_sending_resets_the_subgroup(version: int) -> None:
    pair = session_pair(version)
    rid, _ = _subscribed(pair)
    h = pair.server.open_subgroup(rid, 1)
    pair.server.write_object(h, 0, b"x")
    events = pair.server.stop_sending_received(h.stream_id, 0x1, 0.0)
    assert events == [SubgroupStreamStopped(rid, h.stream_id, 1, 0, 0x1)]
    assert h.closed and pair.s.transport.resets[h.stream_id] == DataStreamResetCode.CANCELLED
    pair.server.write_object(h, 1, b"dropped")  # quietly ignored


@pytest.mark.parametrize("version", VERSIONS)
def test_local_misuse_raises_local_error(version: int) -> None:
    pair = session_pair(version)
    rid, _ = _subscribed(pair)
    h = pair.server.open_subgroup(rid, 1, extensions=False)
    pair.server.write_object(h, 3, b"x")
    with pytest.raises(LocalError):
        pair.server.write_object(h, 3, b"again")  # ids increase
    with pytest.raises(LocalError):
        pair.server.write_object(h, 4, b"x", extensions=((2, 1),))  # no extension fields
    with pytest.raises(LocalError):
        pair.server.write_object(h, 5, b"x", status=ObjectStatus.END_OF_GROUP)
    with pytest.raises(LocalError):
        pair.client.subscribe(NS, b"video")  # already subscribed
    with pytest.raises(LocalError):
        pair.client.subscribe(NS, b"x", priority=300)
    with pytest.raises(LocalError):
        pair.server.accept_subscribe(999)
    with pytest.raises(LocalError):
        pair.server.accept_subscribe(rid)  # already accepted
    with pytest.raises(LocalError):
        pair.client.unsubscribe(12345)
    assert not pair.server.closed and not pair.client.closed


def test_filter_type_values_match_both_drafts() -> None:
    assert [int(f) for f in FilterType] == [1, 2, 3, 4]


@pytest.mark.parametrize("version", VERSIONS)
def test_values_that_do_not_fit_the_wire_are_local_errors_and_leave_no_id_gap(
    version: int,
) -> None:
    pair = session_pair(version)
    rid, _ = _subscribed(pair)
    with pytest.raises(LocalError):
        pair.client.fetch(NS, b"t", Location(-1, 0), Location(1, 0))
    with pytest.raises(LocalError):
        pair.client.fetch(NS, b"t", Location(1 << 62, 0), Location(1, 0))
    with pytest.raises(LocalError):
        pair.server.open_subgroup(rid, 1 << 62)
    with pytest.raises(LocalError):
        pair.client.subscribe((b"x" * 5000,), b"t")  # full track name over 4096 bytes
    # The failed requests consumed no request id: the next one is in sequence.
    assert pair.client.track_status(NS, b"t") == rid + 2
    pair.deliver_until_idle()
    assert not pair.server.closed and not pair.client.closed


@pytest.mark.parametrize("version", VERSIONS)
def test_statistics_count_objects_and_messages(version: int) -> None:
    pair = session_pair(version)
    rid, _ = _subscribed(pair)
    h = pair.server.open_subgroup(rid, 1)
    pair.server.write_object(h, 0, b"abc")
    pair.server.send_object_datagram(rid, 2, 0, b"de")
    pair.deliver_until_idle()
    sent, got = pair.server.statistics(), pair.client.statistics()
    assert (sent.objects_sent, sent.object_bytes_sent, sent.subgroup_streams_opened) == (2, 5, 1)
    assert (got.objects_received, got.object_bytes_received) == (2, 5)
    # CLIENT_SETUP + SUBSCRIBE went one way, SERVER_SETUP + SUBSCRIBE_OK the other.
    assert got.control_messages_sent == sent.control_messages_received == 2
    assert sent.control_messages_sent == got.control_messages_received == 2
    assert got.open_requests == sent.open_requests == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_streams_beyond_publish_done_stream_count_are_dropped(version: int) -> None:
    peer = RawPeer(version, is_client=True)
    peer.setup()
    rid = peer.session.subscribe(NS, b"a")
    order = None if version == DRAFT_16 else GroupOrder.ASCENDING
    peer.send(m.SubscribeOk(rid, 4, group_order=order))
    peer.send(m.PublishDone(rid, PublishDoneCode.TRACK_ENDED, 1))
    peer.feed(3, _subgroup_bytes(version, 4, [b"in"]), fin=True)
    peer.feed(7, _subgroup_bytes(version, 4, [b"extra"], fin_group=2), fin=True)
    events = peer.take()
    assert [o.payload for o in events_of(events, ObjectReceived)] == [b"in"]
    assert peer.transport.stops[7] == DataStreamResetCode.CANCELLED
    assert not peer.session.closed


def test_draft14_subscribe_for_a_track_we_offered_with_publish_is_surfaced() -> None:
    peer = RawPeer(DRAFT_14)
    peer.setup()
    rid = peer.session.publish(NS, b"t")
    peer.send(m.Subscribe(0, NS, b"t"))
    events = peer.take()
    assert events_of(events, SubscribeRequested)[0].request_id == 0
    assert not peer.session.closed and rid == 1


def test_draft16_subscribe_for_a_track_we_offered_with_publish_is_duplicate() -> None:
    peer = RawPeer(DRAFT_16)
    peer.setup()
    peer.session.publish(NS, b"t")
    peer.send(m.Subscribe(0, NS, b"t"))
    assert not events_of(peer.take(), SubscribeRequested)
    errors = [r for r in peer.received() if isinstance(r, m.RequestError)]
    assert [(e.request_id, e.error_code) for e in errors] == [
        (0, RequestErrorCode.DUPLICATE_SUBSCRIPTION)
    ]


def test_draft16_new_group_request_reaches_the_publisher() -> None:
    pair = session_pair(DRAFT_16)
    pair.take()
    rid = pair.client.subscribe(NS, b"v", new_group_request=0)
    pair.deliver_until_idle()
    _, s = pair.take()
    assert events_of(s, SubscribeRequested)[0].new_group_request == 0
    pair.server.accept_subscribe(rid, largest=Location(4, 0))
    pair.deliver_until_idle()
    pair.client.update_subscription(rid, new_group_request=5)
    pair.deliver_until_idle()
    _, s = pair.take()
    assert events_of(s, SubscriptionUpdated)[0].new_group_request == 5
    draft14 = session_pair(DRAFT_14)
    with pytest.raises(LocalError):
        draft14.client.subscribe(NS, b"v", new_group_request=0)


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
def test_unknown_draft16_message_parameter_is_ignored_unless_strict(strict: bool) -> None:
    """aiomoqt 0.13.3 sends MAX_CACHE_DURATION (0x04, a draft-16 *track extension*) as a
    SUBSCRIBE parameter; by default we keep and ignore it, strict mode follows the draft."""
    peer = RawPeer(DRAFT_16, strict_parameters=strict)
    peer.setup()
    params = m.MessageParameters.build().with_value(0x04, 5000)
    peer.send(m.Subscribe(0, NS, b"video", parameters=params))
    events = peer.take()
    if strict:
        closed = closed_with(events)
        assert closed is not None and closed.code == SessionCloseCode.PROTOCOL_VIOLATION
    else:
        assert closed_with(events) is None
        (req,) = events_of(events, SubscribeRequested)
        assert (req.namespace, req.name) == (NS, b"video")
