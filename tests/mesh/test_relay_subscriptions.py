"""A downstream subscription ends in one place, whatever ends it: the upstream is
released once the track has no subscriber left (issue 13)."""

from __future__ import annotations

import pytest

from moqt import DRAFT_14, DRAFT_16, PublishDoneCode
from moqt.events import (
    PublishDoneReceived,
    PublishNamespaceAccepted,
    SubscribeAccepted,
    SubscribeRequested,
    Unsubscribed,
)
from moqt.types import Location, SubscriptionFilter
from tests.moqt.harness import events_of

from .relay_lab import NS, Client, RelayLab, write_group

VERSIONS = [pytest.param(DRAFT_16, id="d16"), pytest.param(DRAFT_14, id="d14")]


def announcing_publisher(lab: RelayLab) -> Client:
    pub = lab.client()
    pub.session.publish_namespace(NS)
    lab.run()
    assert events_of(pub.take(), PublishNamespaceAccepted)
    return pub


def ranged_subscriber(lab: RelayLab, pub: Client, end_group: int) -> tuple[Client, int]:
    """A subscriber of groups 0..``end_group``; the relay's upstream SUBSCRIBE is accepted.
    Returns the subscriber and the upstream request id."""
    sub = lab.client()
    sub.session.subscribe(
        NS, b"video", filter=SubscriptionFilter.absolute_range(Location(0, 0), end_group)
    )
    lab.run()
    (requested,) = events_of(pub.take(), SubscribeRequested)
    pub.session.accept_subscribe(requested.request_id, largest=None)
    lab.run()
    assert events_of(sub.take(), SubscribeAccepted)
    return sub, requested.request_id


@pytest.mark.parametrize("version", VERSIONS)
def test_the_only_range_ending_releases_the_upstream(version: int) -> None:
    lab = RelayLab(version)
    pub = announcing_publisher(lab)
    sub, upstream = ranged_subscriber(lab, pub, end_group=0)
    write_group(pub.session, upstream, 0, 2)
    write_group(pub.session, upstream, 1, 1)  # past the end group: the range is done
    lab.run()
    done = events_of(sub.take(), PublishDoneReceived)
    assert [d.code for d in done] == [PublishDoneCode.SUBSCRIPTION_ENDED]
    unsubscribed = events_of(pub.take(), Unsubscribed)
    assert [u.request_id for u in unsubscribed] == [upstream]
    stats = lab.relay.statistics()
    assert stats["subscriptions"] == 0 and stats["upstream_subscriptions"] == 0
    assert not sub.peer.downstream


@pytest.mark.parametrize("version", VERSIONS)
def test_a_range_ending_keeps_the_upstream_for_other_subscribers(version: int) -> None:
    lab = RelayLab(version)
    pub = announcing_publisher(lab)
    ranged, upstream = ranged_subscriber(lab, pub, end_group=0)
    live = lab.client()
    live.session.subscribe(NS, b"video")
    lab.run()
    assert events_of(live.take(), SubscribeAccepted)
    write_group(pub.session, upstream, 0, 1)
    write_group(pub.session, upstream, 1, 1)
    lab.run()
    assert events_of(ranged.take(), PublishDoneReceived)
    assert not events_of(pub.take(), Unsubscribed)
    assert lab.relay.statistics()["upstream_subscriptions"] == 1


def test_a_range_ending_releases_the_upstream_after_the_linger() -> None:
    lab = RelayLab(DRAFT_16, upstream_linger=5.0)
    pub = announcing_publisher(lab)
    sub, upstream = ranged_subscriber(lab, pub, end_group=0)
    write_group(pub.session, upstream, 0, 1)
    write_group(pub.session, upstream, 1, 1)
    lab.run()
    assert events_of(sub.take(), PublishDoneReceived)
    lab.advance(1.0)
    assert not events_of(pub.take(), Unsubscribed)  # still lingering
    lab.advance(5.0)
    assert [u.request_id for u in events_of(pub.take(), Unsubscribed)] == [upstream]
    assert lab.relay.statistics()["upstream_subscriptions"] == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_a_session_that_ends_while_its_subscribe_waits_releases_the_upstream(
    version: int,
) -> None:
    lab = RelayLab(version)
    pub = announcing_publisher(lab)
    sub = lab.client()
    sub.session.subscribe(NS, b"video")
    lab.run()
    (requested,) = events_of(pub.take(), SubscribeRequested)  # not answered yet
    track = lab.relay.track(NS, b"video")
    assert track is not None and list(track.waiting) == [(sub.peer, 0)]
    lab.relay.detach(sub.peer)
    lab.run()
    assert [u.request_id for u in events_of(pub.take(), Unsubscribed)] == [requested.request_id]
    assert not track.waiting and not sub.peer.waiting
    assert lab.relay.statistics()["upstream_subscriptions"] == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_the_track_indexes_its_subscriptions_and_the_peer_by_request_id(version: int) -> None:
    lab = RelayLab(version)
    pub = announcing_publisher(lab)
    ranged, upstream = ranged_subscriber(lab, pub, end_group=5)
    track = lab.relay.track(NS, b"video")
    assert track is not None
    (sub,) = track.subscribers
    assert sub.track is track and ranged.peer.downstream == {sub.request_id: sub}
    ranged.session.unsubscribe(sub.request_id)
    lab.run()
    assert sub.ended and not track.subscribers and not ranged.peer.downstream
    assert [u.request_id for u in events_of(pub.take(), Unsubscribed)] == [upstream]
    sub.end((PublishDoneCode.TRACK_ENDED, "again"))  # a second end does nothing
    lab.run()
    assert not events_of(ranged.take(), PublishDoneReceived)
