"""The relay core over real sessions (in-memory pipes): drafts 16 and 14."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from moqt import DRAFT_14, DRAFT_16, RequestErrorCode, SessionCloseCode
from moqt.events import (
    Event,
    FetchAccepted,
    FetchStreamEnded,
    NamespaceAnnounced,
    ObjectReceived,
    ObjectSource,
    PublishAccepted,
    PublishDoneReceived,
    PublishNamespaceAccepted,
    PublishNamespaceRequested,
    PublishRequested,
    RequestRejected,
    SessionClosed,
    SubgroupStreamEnded,
    SubscribeAccepted,
    SubscribeRequested,
    TrackStatusReceived,
    Unsubscribed,
)
from moqt.types import Location, ObjectStatus, SubscriptionFilter
from tests.moqt.harness import events_of

from .relay_lab import NS, Client, RelayLab, write_group

VERSIONS = [pytest.param(DRAFT_16, id="d16"), pytest.param(DRAFT_14, id="d14")]


def objects(events: Sequence[Event]) -> list[tuple[int, int]]:
    return [(e.group_id, e.object_id) for e in events if isinstance(e, ObjectReceived)]


def publisher_with_track(lab: RelayLab, name: bytes = b"video") -> tuple[Client, int]:
    """A publisher that PUBLISHed ``name`` and got PUBLISH_OK."""
    pub = lab.client()
    rid = pub.session.publish(NS, name)
    lab.run()
    assert events_of(pub.take(), PublishAccepted)
    return pub, rid


@pytest.mark.parametrize("version", VERSIONS)
def test_publish_then_subscribe_forwards_live_objects(version: int) -> None:
    lab = RelayLab(version)
    pub, prid = publisher_with_track(lab)
    write_group(pub.session, prid, 0, 5)
    lab.run()
    sub = lab.client()
    srid = sub.session.subscribe(NS, b"video")
    lab.run()
    ok = events_of(sub.take(), SubscribeAccepted)
    assert ok and ok[0].largest == Location(0, 4)
    write_group(pub.session, prid, 1, 4)
    lab.run()
    got = sub.take()
    assert objects(got) == [(1, i) for i in range(4)]
    assert next(e.payload for e in events_of(got, ObjectReceived)) == b"g1-o0"
    assert events_of(got, SubgroupStreamEnded)
    assert all(e.request_id == srid for e in events_of(got, ObjectReceived))
    stats = lab.relay.statistics()
    assert stats["objects_in"] == 9 and stats["objects_out"] == 4
    assert stats["subscriptions"] == 1 and stats["upstream_subscriptions"] == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_one_upstream_subscription_for_many_subscribers(version: int) -> None:
    lab = RelayLab(version)
    pub = lab.client()
    pub.session.publish_namespace(NS)
    lab.run()
    assert events_of(pub.take(), PublishNamespaceAccepted)
    subs = [lab.client() for _ in range(3)]
    for s in subs:
        s.session.subscribe(NS, b"audio")
    lab.run()
    requested = events_of(pub.take(), SubscribeRequested)
    assert len(requested) == 1  # one upstream SUBSCRIBE however many subscribers
    assert all(not events_of(s.events, SubscribeAccepted) for s in subs)  # held until upstream OK
    upstream = requested[0].request_id
    pub.session.accept_subscribe(upstream, largest=None)
    lab.run()
    for s in subs:
        assert events_of(s.take(), SubscribeAccepted)
    write_group(pub.session, upstream, 0, 3)
    lab.run()
    for s in subs:
        assert objects(s.take()) == [(0, 0), (0, 1), (0, 2)]
    # the last subscriber leaving releases the upstream subscription
    for s in subs:
        for request in list(s.peer.downstream):
            s.session.unsubscribe(request)
    lab.run()
    assert events_of(pub.take(), Unsubscribed)
    assert lab.relay.statistics()["upstream_subscriptions"] == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_track_is_does_not_exist(version: int) -> None:
    lab = RelayLab(version)
    sub = lab.client()
    rids = [
        sub.session.subscribe(NS, b"nope"),
        sub.session.track_status(NS, b"nope"),
        sub.session.fetch(NS, b"nope", Location(0, 0), Location(1, 0)),
    ]
    lab.run()
    rejected = {e.request_id: e for e in events_of(sub.take(), RequestRejected)}
    assert set(rejected) == set(rids)
    for e in rejected.values():
        assert e.error == RequestErrorCode.DOES_NOT_EXIST
    assert lab.relay.rejections()["does_not_exist"] == 3


@pytest.mark.parametrize("version", VERSIONS)
def test_filters(version: int) -> None:
    lab = RelayLab(version)
    pub, prid = publisher_with_track(lab)
    write_group(pub.session, prid, 0, 3)
    write_group(pub.session, prid, 1, 3, end=False)  # group 1 still open
    lab.run()
    next_group = lab.client()
    next_group.session.subscribe(NS, b"video", filter=SubscriptionFilter.next_group_start())
    largest = lab.client()
    largest.session.subscribe(NS, b"video", filter=SubscriptionFilter.largest_object())
    absolute = lab.client()
    absolute.session.subscribe(
        NS, b"video", filter=SubscriptionFilter.absolute_start(Location(0, 1))
    )
    ranged = lab.client()
    ranged.session.subscribe(
        NS, b"video", filter=SubscriptionFilter.absolute_range(Location(1, 1), 2)
    )
    lab.run()
    # absolute filters replay from the cache at once
    assert objects(absolute.take()) == [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert objects(ranged.take()) == [(1, 1), (1, 2)]
    assert objects(next_group.take()) == []
    assert objects(largest.take()) == []
    # the rest of group 1 continues on the same streams, then groups 2 and 3
    handle = pub.session.open_subgroup(prid, 1, 1)
    pub.session.write_object(handle, 3, b"late")
    pub.session.end_subgroup(handle)
    write_group(pub.session, prid, 2, 2)
    write_group(pub.session, prid, 3, 1)
    lab.run()
    assert objects(next_group.take()) == [(2, 0), (2, 1), (3, 0)]
    assert objects(largest.take()) == [(1, 3), (2, 0), (2, 1), (3, 0)]
    assert objects(absolute.take()) == [(1, 3), (2, 0), (2, 1), (3, 0)]
    got = ranged.take()
    assert objects(got) == [(1, 3), (2, 0), (2, 1)]
    done = events_of(got, PublishDoneReceived)
    assert done and done[0].code == 0x3  # SUBSCRIPTION_ENDED


@pytest.mark.parametrize("version", VERSIONS)
def test_fetches_from_cache(version: int) -> None:
    lab = RelayLab(version)
    pub, prid = publisher_with_track(lab)
    for g in range(3):
        write_group(pub.session, prid, g, 4, end=g < 2)
    lab.run()
    sub = lab.client()
    srid = sub.session.subscribe(NS, b"video")
    lab.run()
    assert events_of(sub.take(), SubscribeAccepted)
    sub.session.joining_fetch(srid, 0)  # relative: the current group
    lab.run()
    got = sub.take()
    assert events_of(got, FetchAccepted)
    fetched = [e for e in events_of(got, ObjectReceived) if e.source is ObjectSource.FETCH]
    assert [(e.group_id, e.object_id) for e in fetched] == [(2, i) for i in range(4)]
    assert events_of(got, FetchStreamEnded)

    other = lab.client()
    orid = other.session.subscribe(NS, b"video")
    lab.run()
    other.take()
    other.session.joining_fetch(orid, 1, absolute=True)
    other.session.fetch(NS, b"video", Location(0, 2), Location(1, 2))
    lab.run()
    got = other.take()
    by_request: dict[int, list[tuple[int, int]]] = {}
    for e in events_of(got, ObjectReceived):
        by_request.setdefault(e.request_id, []).append((e.group_id, e.object_id))
    absolute, standalone = sorted(by_request.items())
    assert absolute[1] == [(1, i) for i in range(4)] + [(2, i) for i in range(4)]
    assert standalone[1] == [(0, 2), (0, 3), (1, 0), (1, 1)]
    assert lab.relay.statistics()["cache_hits"] >= 3

    late = lab.client()
    late.session.fetch(NS, b"video", Location(9, 0), Location(10, 0))
    lab.run()
    rejected = events_of(late.take(), RequestRejected)
    assert rejected and rejected[0].error == RequestErrorCode.INVALID_RANGE


@pytest.mark.parametrize("version", VERSIONS)
def test_a_fetch_over_groups_with_end_of_group_markers(version: int) -> None:
    """aiomoqt's pub_example ends every group with an END_OF_GROUP object. Draft-16 fetch
    objects carry no status (the gap says it), so the relay leaves the markers out there;
    draft-14 sends them. Either way the FETCH covers every group, not just the first."""
    lab = RelayLab(version)
    pub, prid = publisher_with_track(lab)
    for g in range(3):
        handle = write_group(pub.session, prid, g, 3, end=False)
        pub.session.write_object(handle, 3, b"", status=ObjectStatus.END_OF_GROUP)
        pub.session.end_subgroup(handle)
    lab.run()
    sub = lab.client()
    srid = sub.session.subscribe(NS, b"video")
    lab.run()
    assert events_of(sub.take(), SubscribeAccepted)
    sub.session.joining_fetch(srid, 2)  # the current group and the two before it
    lab.run()
    got = sub.take()
    fetched = [e for e in events_of(got, ObjectReceived) if e.source is ObjectSource.FETCH]
    normal = [(g, o) for g in range(3) for o in range(3)]
    if version == DRAFT_16:
        assert [(e.group_id, e.object_id) for e in fetched] == normal
    else:
        assert [(e.group_id, e.object_id) for e in fetched] == sorted(
            normal + [(g, 3) for g in range(3)]
        )
        assert {e.status for e in fetched if e.object_id == 3} == {ObjectStatus.END_OF_GROUP}
    assert events_of(got, FetchStreamEnded)


@pytest.mark.parametrize("version", VERSIONS)
def test_track_status_and_namespace_subscription(version: int) -> None:
    lab = RelayLab(version)
    watcher = lab.client()
    watcher.session.subscribe_namespace((b"live",))
    lab.run()
    watcher.take()
    pub = lab.client()
    pub.session.publish_namespace(NS)
    prid = pub.session.publish(NS, b"video")
    lab.run()
    write_group(pub.session, prid, 4, 2)
    lab.run()
    got = watcher.take()
    if version == DRAFT_16:
        assert [e.namespace for e in events_of(got, NamespaceAnnounced)] == [NS]
    else:
        assert [e.namespace for e in events_of(got, PublishNamespaceRequested)] == [NS]
    published = events_of(got, PublishRequested)
    assert [(e.namespace, e.name) for e in published] == [(NS, b"video")]
    watcher.session.accept_publish(published[0].request_id)
    asker = lab.client()
    asker.session.track_status(NS, b"video")
    lab.run()
    status = events_of(asker.take(), TrackStatusReceived)
    assert status and status[0].largest == Location(4, 1)


@pytest.mark.parametrize("version", VERSIONS)
def test_publisher_leaving_ends_subscriptions(version: int) -> None:
    lab = RelayLab(version)
    pub, prid = publisher_with_track(lab)
    write_group(pub.session, prid, 0, 2)
    lab.run()
    sub = lab.client()
    sub.session.subscribe(NS, b"video")
    lab.run()
    sub.take()
    pub.session.close(SessionCloseCode.NO_ERROR, "bye")
    lab.run()
    done = events_of(sub.take(), PublishDoneReceived)
    assert done and done[0].code == 0x2  # TRACK_ENDED
    assert lab.relay.statistics()["sessions"] == 1
    # the cache outlives the publisher: fetch still works
    sub.session.fetch(NS, b"video", Location(0, 0), Location(0, 2))
    lab.run()
    assert objects(sub.take()) == [(0, 0), (0, 1)]


@pytest.mark.parametrize("version", VERSIONS)
def test_publish_done_waits_for_streams_in_flight(version: int) -> None:
    lab = RelayLab(version)
    pub, prid = publisher_with_track(lab)
    sub = lab.client()
    sub.session.subscribe(NS, b"video")
    lab.run()
    sub.take()
    handle = write_group(pub.session, prid, 0, 2, end=False)
    pub.session.publish_done(prid)  # resets the open stream per the session's rules
    lab.run()
    del handle
    got = sub.take()
    assert objects(got) == [(0, 0), (0, 1)]
    assert events_of(got, PublishDoneReceived)


@pytest.mark.parametrize("version", VERSIONS)
def test_oversized_object_is_refused_and_node_keeps_serving(version: int) -> None:
    lab = RelayLab(version)
    pub = lab.client(max_object_size=1000)
    prid = pub.session.publish(NS, b"video")
    lab.run()
    handle = pub.session.open_subgroup(prid, 0, 0)
    pub.session.write_object(handle, 0, b"x" * 5000)
    lab.run()
    closed = events_of(pub.take(), SessionClosed)
    assert closed and closed[0].code == SessionCloseCode.PROTOCOL_VIOLATION
    assert lab.relay.statistics()["sessions"] == 0
    other, orid = publisher_with_track(lab, b"audio")
    write_group(other.session, orid, 0, 1)
    lab.run()
    assert lab.relay.statistics()["objects_in"] == 1


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("upstream_ready", [True, False], ids=["live", "upstream-pending"])
def test_joining_fetch_in_the_same_read_as_its_subscribe(
    version: int, upstream_ready: bool
) -> None:
    """aiomoqt's join sends SUBSCRIBE and the joining FETCH back to back: the FETCH is
    parsed before the relay answered the SUBSCRIBE, so the relay computes the range."""
    lab = RelayLab(version)
    pub = lab.client()
    pub.session.publish_namespace(NS)
    lab.run()
    first = lab.client()
    first.session.subscribe(NS, b"video")
    lab.run()
    upstream = events_of(pub.take(), SubscribeRequested)[0].request_id
    if upstream_ready:
        pub.session.accept_subscribe(upstream)
        for g in range(3):
            write_group(pub.session, upstream, g, 3)
        lab.run()
    joiner = lab.client()
    srid = joiner.session.subscribe(NS, b"video")
    joiner.session.joining_fetch(srid, 1)
    joiner.coalesce_outbox()
    lab.run()
    if not upstream_ready:
        assert not events_of(joiner.events, FetchAccepted)  # held with its SUBSCRIBE
        pub.session.accept_subscribe(upstream)
        lab.run()
        for g in range(3):
            write_group(pub.session, upstream, g, 3)
        lab.run()
    got = joiner.take()
    accepted = events_of(got, SubscribeAccepted)
    assert accepted
    fetched = [
        (e.group_id, e.object_id)
        for e in events_of(got, ObjectReceived)
        if e.source is ObjectSource.FETCH
    ]
    if upstream_ready:
        assert events_of(got, FetchAccepted)
        assert fetched == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
    else:
        # nothing was published before the subscription: an empty joining range
        rejected = events_of(got, RequestRejected)
        assert rejected and rejected[0].error == RequestErrorCode.INVALID_RANGE


@pytest.mark.parametrize("version", VERSIONS)
def test_upstream_linger_keeps_the_subscription_for_a_while(version: int) -> None:
    lab = RelayLab(version, upstream_linger=5.0)
    pub = lab.client()
    pub.session.publish_namespace(NS)
    lab.run()
    viewer = lab.client()
    rid = viewer.session.subscribe(NS, b"video")
    lab.run()
    upstream = events_of(pub.take(), SubscribeRequested)[0].request_id
    pub.session.accept_subscribe(upstream)
    lab.run()
    viewer.session.unsubscribe(rid)
    lab.advance(3.0)
    assert not events_of(pub.take(), Unsubscribed)  # still lingering
    again = lab.client()
    again.session.subscribe(NS, b"video")
    lab.advance(3.0)
    assert events_of(again.take(), SubscribeAccepted)
    assert not events_of(pub.take(), SubscribeRequested)  # the same upstream is reused
    for request in list(again.peer.downstream):
        again.session.unsubscribe(request)
    lab.advance(1.0)
    assert not events_of(pub.take(), Unsubscribed)
    lab.advance(5.0)
    assert events_of(pub.take(), Unsubscribed)
    assert lab.relay.statistics()["upstream_subscriptions"] == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_edge_relay_holds_one_upstream_to_its_parent(version: int) -> None:
    """origin relay <- edge relay <- many viewers: the origin sees one SUBSCRIBE."""
    lab = RelayLab(version)  # lab.relay is the origin
    edge = lab.new_relay()
    pub = lab.client()
    pub.session.publish_namespace(NS)
    lab.run()
    link = lab.link(edge)
    assert link.upstream_of is not None
    edge.add_route((b"live",), link.upstream_of[1])
    viewers = [lab.client(relay=edge) for _ in range(4)]
    for v in viewers:
        v.session.subscribe(NS, b"video")
    lab.run()
    requested = events_of(pub.take(), SubscribeRequested)
    assert len(requested) == 1
    pub.session.accept_subscribe(requested[0].request_id)
    lab.run()
    write_group(pub.session, requested[0].request_id, 0, 4)
    lab.run()
    for v in viewers:
        got = v.take()
        assert events_of(got, SubscribeAccepted)
        assert objects(got) == [(0, i) for i in range(4)]
    assert lab.relay.statistics()["subscriptions"] == 1  # the edge, once
    assert edge.statistics()["subscriptions"] == 4
    edge.remove_route((b"live",), link.upstream_of[1])
    late = lab.client(relay=edge)
    late.session.subscribe(NS, b"audio")
    lab.run()
    rejected = events_of(late.take(), RequestRejected)
    assert rejected and rejected[0].error == RequestErrorCode.DOES_NOT_EXIST


@pytest.mark.parametrize("version", VERSIONS)
def test_restarted_publisher_starts_a_fresh_track(version: int) -> None:
    lab = RelayLab(version)
    first, rid = publisher_with_track(lab)
    write_group(first.session, rid, 5, 3)
    lab.run()
    first.session.close()
    lab.run()
    second, rid2 = publisher_with_track(lab)  # groups start again at 0
    viewer = lab.client()
    viewer.session.subscribe(NS, b"video")
    lab.run()
    ok = events_of(viewer.take(), SubscribeAccepted)
    assert ok and ok[0].largest is None
    write_group(second.session, rid2, 0, 2)
    lab.run()
    assert objects(viewer.take()) == [(0, 0), (0, 1)]


# draft-16 Track Extensions: DELIVERY_TIMEOUT (0x02, ms), an unknown even and an unknown odd type.
TRACK_EXTENSIONS = ((0x02, 200), (0x40, 7), (0x41, b"opaque"))


def test_track_extensions_of_a_publish_are_forwarded_to_every_subscriber() -> None:
    """draft-16 "Extension Headers": unsupported ones "MUST NOT be modified, MUST be
    cached as part of the Track ... and MUST be forwarded by relays" - in the SUBSCRIBE_OK
    of a subscriber and in the PUBLISH offered to a namespace watcher."""
    lab = RelayLab(DRAFT_16)
    watcher = lab.client()
    watcher.session.subscribe_namespace((b"live",))
    lab.run()
    pub = lab.client()
    pub.session.publish(NS, b"video", extensions=TRACK_EXTENSIONS)
    lab.run()
    assert events_of(pub.take(), PublishAccepted)
    offered = events_of(watcher.take(), PublishRequested)
    assert offered and set(TRACK_EXTENSIONS) <= set(offered[0].extensions)
    sub = lab.client()
    sub.session.subscribe(NS, b"video")
    lab.run()
    ok = events_of(sub.take(), SubscribeAccepted)
    assert ok and set(TRACK_EXTENSIONS) <= set(ok[0].extensions)


def test_track_extensions_of_an_upstream_subscribe_ok_reach_the_subscribers() -> None:
    lab = RelayLab(DRAFT_16)
    pub = lab.client()
    pub.session.publish_namespace(NS)
    lab.run()
    pub.take()
    sub = lab.client()
    sub.session.subscribe(NS, b"audio")
    lab.run()
    upstream = events_of(pub.take(), SubscribeRequested)[0].request_id
    pub.session.accept_subscribe(upstream, largest=None, extensions=TRACK_EXTENSIONS)
    lab.run()
    ok = events_of(sub.take(), SubscribeAccepted)
    assert ok and set(TRACK_EXTENSIONS) <= set(ok[0].extensions)


@pytest.mark.parametrize(("asked_ms", "seconds"), [(None, 0.2), (500, 0.2), (50, 0.05)])
def test_the_delivery_timeout_is_the_smaller_of_the_subscribers_and_the_tracks(
    asked_ms: int | None, seconds: float
) -> None:
    """draft-16 DELIVERY TIMEOUT: "If both the subscriber specifies this parameter and the
    Track has a DELIVERY_TIMEOUT extension, the endpoints use the min of the two values";
    the extension alone applies too ("If unspecified, the subscriber's ... is used")."""
    lab = RelayLab(DRAFT_16)
    pub = lab.client()
    pub.session.publish(NS, b"video", extensions=TRACK_EXTENSIONS)
    lab.run()
    sub = lab.client()
    rid = sub.session.subscribe(NS, b"video", delivery_timeout=asked_ms)
    lab.run()
    assert events_of(sub.take(), SubscribeAccepted)
    assert sub.peer.scheduler.delivery_timeout(rid) == pytest.approx(seconds)


def test_a_draft14_track_has_no_delivery_timeout_unless_the_subscriber_asks() -> None:
    lab = RelayLab(DRAFT_14)
    publisher_with_track(lab)
    sub = lab.client()
    plain = sub.session.subscribe(NS, b"video")
    lab.run()
    assert events_of(sub.take(), SubscribeAccepted)
    assert sub.peer.scheduler.delivery_timeout(plain) is None
