"""Nothing the relay does not deliver goes uncounted: the cache budget never silently
eats a live object, and objects discarded because a stream was cancelled show in the
relay's statistics (so in every node's /metrics)."""

from __future__ import annotations

from mesh.relay import CacheLimits
from moqt.events import ObjectReceived, SubgroupStreamEnded, SubgroupStreamOpened
from moqt.types import Location, SubscriptionFilter
from moqt.version import DRAFT_16
from tests.moqt.harness import events_of

from .relay_lab import NS, RelayLab
from .test_relay_core import objects, publisher_with_track


def test_a_live_object_older_than_the_cache_budget_still_reaches_its_open_stream() -> None:
    lab = RelayLab(DRAFT_16, cache=CacheLimits(max_bytes=1_000, max_age=60))
    pub, prid = publisher_with_track(lab)
    sub = lab.client()
    sub.session.subscribe(NS, b"video", filter=SubscriptionFilter.absolute_start(Location(0, 0)))
    lab.run()
    group0 = pub.session.open_subgroup(prid, 0, 0)
    for i in range(2):
        pub.session.write_object(group0, i, b"g0-o%d" % i)
    lab.run()
    # Group 1 alone is over the budget: group 0 is evicted while its stream is still open.
    group1 = pub.session.open_subgroup(prid, 1, 0)
    pub.session.write_object(group1, 0, b"x" * 2_000)
    lab.run()
    track = lab.relay.track(NS, b"video")
    assert track is not None and track.cache.group_ids() == [1]
    pub.session.write_object(group0, 2, b"g0-o2")  # the live tail of group 0
    pub.session.end_subgroup(group0)
    lab.run()
    got = sub.take()
    assert objects(got) == [(0, 0), (0, 1), (1, 0), (0, 2)]
    assert [e.group_id for e in events_of(got, SubgroupStreamEnded)] == [0]
    stats = lab.relay.statistics()
    assert stats["duplicate_objects"] == 0 and track.cache.statistics()["uncached"] == 1


def test_objects_discarded_for_a_stopped_stream_are_in_the_relay_statistics() -> None:
    lab = RelayLab(DRAFT_16)
    pub, prid = publisher_with_track(lab)
    sub = lab.client()
    sub.session.subscribe(NS, b"video", filter=SubscriptionFilter.absolute_start(Location(0, 0)))
    lab.run()
    handle = pub.session.open_subgroup(prid, 0, 0)
    pub.session.write_object(handle, 0, b"g0-o0")
    lab.run()
    got = sub.take()
    (opened,) = events_of(got, SubgroupStreamOpened)
    assert objects(got) == [(0, 0)]
    # The viewer stops the stream (STOP_SENDING reaches the relay's session).
    for event in sub.peer.session.stop_sending_received(opened.stream_id, 0x1, lab.now):
        lab.relay.handle_event(sub.peer, event)
    for i in range(1, 4):
        pub.session.write_object(handle, i, b"g0-o%d" % i)
    lab.run()
    assert not events_of(sub.take(), ObjectReceived)
    stats = lab.relay.statistics()
    assert stats["discarded_cancelled"] == 3
    assert sum(stats[f"drops_{r}"] for r in ("stale_group", "queue_full")) == 0
