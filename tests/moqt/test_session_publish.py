"""PUBLISH / PUBLISH_OK / errors / PUBLISH_DONE, and TRACK_STATUS."""

from __future__ import annotations

import pytest

from moqt import messages as m
from moqt.errors import LocalError, PublishDoneCode, RequestErrorCode, SessionCloseCode
from moqt.events import (
    ObjectReceived,
    PublishAccepted,
    PublishDoneReceived,
    PublishRequested,
    RequestKind,
    RequestRejected,
    SubscriptionUpdated,
    TrackStatusReceived,
    TrackStatusRequested,
    Unsubscribed,
)
from moqt.types import GroupOrder, Location, SubscriptionFilter
from moqt.version import DRAFT_14, DRAFT_16
from tests.moqt.harness import RawPeer, closed_with, events_of, session_pair

VERSIONS = [pytest.param(DRAFT_16, id="d16"), pytest.param(DRAFT_14, id="d14")]
NS = (b"stream", b"org_1", b"lv_1")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("chunk", [None, 1])
def test_publish_accept_and_objects_before_and_after_publish_ok(
    version: int, chunk: int | None
) -> None:
    pair = session_pair(version, chunk_size=chunk)
    pair.take()
    rid = pair.client.publish(
        NS, b"video", track_alias=3, largest=Location(10, 4), group_order=GroupOrder.ASCENDING
    )
    # "Subscriptions": a publisher may send objects before PUBLISH_OK.
    h = pair.client.open_subgroup(rid, 11, priority=5)
    pair.client.write_object(h, 0, b"early")
    pair.deliver_until_idle()
    _, s = pair.take()
    (req,) = events_of(s, PublishRequested)
    assert (req.request_id, req.namespace, req.name, req.track_alias) == (rid, NS, b"video", 3)
    assert req.largest == Location(10, 4) and req.forward
    assert [o.payload for o in events_of(s, ObjectReceived)] == [b"early"]

    flt = SubscriptionFilter.absolute_start(Location(11, 0))
    pair.server.accept_publish(rid, forward=True, priority=20, filter=flt, delivery_timeout=500)
    pair.client.write_object(h, 1, b"later")
    pair.client.end_subgroup(h)
    pair.deliver_until_idle()
    c, s = pair.take()
    (ok,) = events_of(c, PublishAccepted)
    assert (ok.request_id, ok.forward, ok.subscriber_priority) == (rid, True, 20)
    assert ok.filter == flt and ok.delivery_timeout == 500
    assert [o.payload for o in events_of(s, ObjectReceived)] == [b"later"]

    pair.client.publish_done(rid, PublishDoneCode.TRACK_ENDED, "end")
    pair.deliver_until_idle()
    _, s = pair.take()
    (done,) = events_of(s, PublishDoneReceived)
    assert (done.code, done.stream_count, done.reason) == (PublishDoneCode.TRACK_ENDED, 1, "end")


@pytest.mark.parametrize("version", VERSIONS)
def test_publish_rejected_uninterested(version: int) -> None:
    pair = session_pair(version)
    pair.take()
    rid = pair.client.publish(NS, b"audio")
    pair.deliver_until_idle()
    pair.server.reject_request(rid, RequestErrorCode.UNINTERESTED, "no thanks")
    pair.deliver_until_idle()
    c, _ = pair.take()
    (rej,) = events_of(c, RequestRejected)
    assert rej.kind is RequestKind.PUBLISH and rej.error is RequestErrorCode.UNINTERESTED
    assert rej.code == (0x20 if version == DRAFT_16 else 0x4)
    with pytest.raises(LocalError):
        pair.client.open_subgroup(rid, 0)


@pytest.mark.parametrize("version", VERSIONS)
def test_subscriber_updates_and_unsubscribes_a_published_track(version: int) -> None:
    pair = session_pair(version)
    pair.take()
    rid = pair.client.publish(NS, b"video")
    pair.deliver_until_idle()
    pair.server.accept_publish(rid, filter=SubscriptionFilter.absolute_start(Location(0, 0)))
    pair.deliver_until_idle()
    pair.take()
    pair.server.update_subscription(rid, forward=False, start=Location(2, 0))
    pair.deliver_until_idle()
    c, _ = pair.take()
    (upd,) = events_of(c, SubscriptionUpdated)
    assert upd.request_id == rid and upd.forward is False
    h = pair.client.open_subgroup(rid, 2)
    pair.server.unsubscribe(rid)
    pair.deliver_until_idle()
    c, _ = pair.take()
    assert events_of(c, Unsubscribed) == [Unsubscribed(rid)]
    assert h.closed


def test_duplicate_alias_in_publish_closes() -> None:
    peer = RawPeer(DRAFT_16)
    peer.setup()
    peer.send(m.Publish(0, NS, b"a", 4))
    peer.send(m.Publish(2, NS, b"b", 4))
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.DUPLICATE_TRACK_ALIAS


def test_second_publish_ok_is_a_violation() -> None:
    peer = RawPeer(DRAFT_16, is_client=True)
    peer.setup()
    rid = peer.session.publish(NS, b"a")
    peer.send(m.PublishOk(rid))
    peer.send(m.PublishOk(rid))
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION


@pytest.mark.parametrize("version", VERSIONS)
def test_unsubscribe_of_published_track_by_peer(version: int) -> None:
    peer = RawPeer(version, is_client=True)
    peer.setup()
    rid = peer.session.publish(NS, b"a")
    h = peer.session.open_subgroup(rid, 0)
    peer.send(m.Unsubscribe(rid))
    assert events_of(peer.take(), Unsubscribed) == [Unsubscribed(rid)]
    assert h.closed


@pytest.mark.parametrize("version", VERSIONS)
def test_track_status(version: int) -> None:
    pair = session_pair(version)
    pair.take()
    rid = pair.client.track_status(NS, b"video", auth_token=b"t")
    pair.deliver_until_idle()
    _, s = pair.take()
    assert events_of(s, TrackStatusRequested)[0].name == b"video"
    pair.server.answer_track_status(rid, largest=Location(8, 2), expires=10)
    pair.deliver_until_idle()
    c, _ = pair.take()
    assert c == [TrackStatusReceived(rid, Location(8, 2), 10, GroupOrder.ASCENDING)]
    rid2 = pair.client.track_status(NS, b"gone")
    pair.deliver_until_idle()
    pair.server.reject_request(rid2, RequestErrorCode.DOES_NOT_EXIST)
    pair.deliver_until_idle()
    c, _ = pair.take()
    (rej,) = events_of(c, RequestRejected)
    assert rej.kind is RequestKind.TRACK_STATUS and rej.error is RequestErrorCode.DOES_NOT_EXIST


def test_second_publish_of_an_established_track_is_refused_draft16() -> None:
    peer = RawPeer(DRAFT_16)
    peer.setup()
    peer.send(m.Publish(0, NS, b"a", 4))
    peer.session.accept_publish(0)
    peer.send(m.Publish(2, NS, b"a", 5))
    assert len(events_of(peer.take(), PublishRequested)) == 1
    errors = [r for r in peer.received() if isinstance(r, m.RequestError)]
    assert [(e.request_id, e.error_code) for e in errors] == [
        (2, RequestErrorCode.DUPLICATE_SUBSCRIPTION)
    ]
