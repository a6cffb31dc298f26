"""The start group of a cold POP's upstream subscription stays whole (sans-I/O, fake clock).

The order of arrival is the one REGIONS saw on the 80 ms path: SUBSCRIBE_OK says
Largest 3/24, the upstream (its scheduler skipping the start group as stale
behind its own joining-FETCH answer) never sends 3/25.. live, 4/0 arrives, and
only then our joining FETCH brings 3/0..3/24.
"""

from __future__ import annotations

from moqt.errors import RequestErrorCode
from moqt.events import (
    FetchAccepted,
    FetchRequested,
    ObjectReceived,
    ObjectSource,
    SubgroupStreamEnded,
    SubscribeAccepted,
    SubscribeRequested,
)
from moqt.types import FetchType, Location
from tests.moqt.harness import events_of
from tests.pop.test_relay import NS, Lab, Side, subscribe

START = Location(3, 24)


def cold_join(lab: Lab) -> tuple[Side, Side, int, int, int]:
    """A viewer subscribes at a cold POP; the origin accepts with Largest 3/24.
    Returns origin, viewer, the upstream SUBSCRIBE and joining FETCH ids, the viewer's."""
    origin, up = lab.origin()
    lab.relay.route_namespace(up, NS, b"tok")
    viewer = lab.viewer()
    rid = subscribe(lab, viewer)
    request = events_of(origin.events, SubscribeRequested)[0]
    (joining,) = events_of(origin.events, FetchRequested)
    origin.events.clear()
    origin.pair.server.accept_subscribe(request.request_id, largest=START)
    lab.run()
    assert events_of(viewer.events, SubscribeAccepted)[0].largest == START
    viewer.pair.client.joining_fetch(rid, 0)
    lab.run()
    return origin, viewer, request.request_id, joining.request_id, rid


def live(lab: Lab, origin: Side, rid: int, group: int, objects: range, *, fin: bool) -> None:
    server = origin.pair.server
    handle = server.open_subgroup(rid, group, 0)
    for obj in objects:
        server.write_object(handle, obj, b"g%do%d" % (group, obj))
    if fin:
        server.end_subgroup(handle)
    lab.run()


def answer_fetch(lab: Lab, origin: Side, fid: int, group: int, objects: range) -> None:
    server = origin.pair.server
    server.accept_fetch(fid, end_location=Location(group, objects.stop))
    handle = server.open_fetch_stream(fid)
    for obj in objects:
        server.write_fetch_object(handle, group, 0, obj, b"g%do%d" % (group, obj))
    server.end_fetch_stream(handle)
    lab.run()


def received(viewer: Side) -> list[tuple[int, int]]:
    return sorted({(e.group_id, e.object_id) for e in events_of(viewer.events, ObjectReceived)})


def test_a_start_group_tail_the_upstream_never_sent_is_fetched_and_forwarded() -> None:
    lab = Lab(linger=1.0)
    origin, viewer, sub_id, joining_id, _ = cold_join(lab)
    # The upstream skipped 3/25..3/29 on the live subscription; group 4 starts.
    live(lab, origin, sub_id, 4, range(1), fin=False)
    repair = [f for f in events_of(origin.events, FetchRequested) if f.request_id != joining_id]
    assert len(repair) == 1
    fetch = repair[0]
    assert fetch.fetch_type is FetchType.STANDALONE
    assert (fetch.start, fetch.end) == (Location(3, 25), Location(3, 0))  # to the group's end
    assert [t.value for t in fetch.auth_tokens] == [b"tok"]
    # Our joining FETCH comes after group 4 began, then the repair.
    answer_fetch(lab, origin, joining_id, 3, range(25))
    answer_fetch(lab, origin, fetch.request_id, 3, range(25, 30))
    assert received(viewer) == [(3, o) for o in range(30)] + [(4, 0)]
    # The tail went to the viewer on its live subscription, its stream ended like a FIN.
    live_tail = [
        e.object_id
        for e in events_of(viewer.events, ObjectReceived)
        if e.source is ObjectSource.SUBGROUP and e.group_id == 3
    ]
    assert live_tail == [25, 26, 27, 28, 29]
    assert [e.group_id for e in events_of(viewer.events, SubgroupStreamEnded)] == [3]
    stats = lab.relay.statistics()
    assert stats["start_group_repairs_total"] == 1
    assert stats["start_group_repairs"] == 0 and stats["start_groups_watched"] == 0


def test_a_late_joiner_after_the_repair_gets_the_whole_group_from_the_cache() -> None:
    lab = Lab(linger=1.0)
    origin, _, sub_id, joining_id, _ = cold_join(lab)
    live(lab, origin, sub_id, 4, range(1), fin=False)
    (fetch,) = [f for f in events_of(origin.events, FetchRequested) if f.request_id != joining_id]
    answer_fetch(lab, origin, joining_id, 3, range(25))
    answer_fetch(lab, origin, fetch.request_id, 3, range(25, 30))
    track = lab.relay.track(NS, b"video")
    assert track is not None
    group = track.cache.group(3)
    assert group is not None and sorted(group.objects) == list(range(30))
    assert group.complete_subgroups == {0}


def test_a_start_group_stream_reset_by_the_upstream_is_fetched_again() -> None:
    lab = Lab(linger=1.0)
    origin, viewer, sub_id, joining_id, _ = cold_join(lab)
    server = origin.pair.server
    handle = server.open_subgroup(sub_id, 3, 0)
    server.write_object(handle, 25, b"g3o25")
    server.write_object(handle, 26, b"g3o26")
    lab.run()
    server.reset_subgroup(handle)
    lab.run()
    (fetch,) = [f for f in events_of(origin.events, FetchRequested) if f.request_id != joining_id]
    assert fetch.start == Location(3, 25)
    viewer.events.clear()  # what the viewer had of the reset stream may be lost with it
    answer_fetch(lab, origin, fetch.request_id, 3, range(25, 30))
    live_tail = [
        e.object_id
        for e in events_of(viewer.events, ObjectReceived)
        if e.source is ObjectSource.SUBGROUP
    ]
    assert live_tail == [25, 26, 27, 28, 29]


def test_a_whole_start_group_is_not_fetched_again() -> None:
    lab = Lab(linger=1.0)
    origin, viewer, sub_id, joining_id, _ = cold_join(lab)
    live(lab, origin, sub_id, 3, range(25, 30), fin=True)
    live(lab, origin, sub_id, 4, range(2), fin=False)
    answer_fetch(lab, origin, joining_id, 3, range(25))
    assert events_of(origin.events, FetchRequested) == []  # no FETCH besides the joining one
    assert received(viewer) == [(3, o) for o in range(30)] + [(4, 0), (4, 1)]
    assert lab.relay.statistics()["start_groups_watched"] == 0


def test_a_later_group_overtaking_the_start_group_stream_is_no_loss() -> None:
    """QUIC orders nothing across streams: group 4's stream may arrive while group 3's
    is still open, which is no reason to fetch group 3 again."""
    lab = Lab(linger=1.0)
    origin, _, sub_id, _, _ = cold_join(lab)
    server = origin.pair.server
    three = server.open_subgroup(sub_id, 3, 0)
    server.write_object(three, 25, b"g3o25")
    lab.run()
    live(lab, origin, sub_id, 4, range(1), fin=False)
    for obj in range(26, 30):
        server.write_object(three, obj, b"g3o%d" % obj)
    server.end_subgroup(three)
    lab.run()
    assert events_of(origin.events, FetchRequested) == []  # no FETCH besides the joining one
    assert lab.relay.statistics()["start_groups_watched"] == 0


def test_a_refused_repair_leaves_nothing_behind() -> None:
    lab = Lab(linger=1.0)
    origin, viewer, sub_id, joining_id, _ = cold_join(lab)
    live(lab, origin, sub_id, 4, range(1), fin=False)
    (fetch,) = [f for f in events_of(origin.events, FetchRequested) if f.request_id != joining_id]
    origin.pair.server.reject_request(fetch.request_id, RequestErrorCode.INVALID_RANGE, "gone")
    lab.run()
    stats = lab.relay.statistics()
    assert stats["start_group_repairs"] == 0 and stats["start_group_repairs_total"] == 1
    # The live subscription goes on.
    live(lab, origin, sub_id, 5, range(1), fin=False)
    assert (5, 0) in received(viewer)
    assert not [
        e for e in events_of(viewer.events, FetchAccepted) if e.request_id == fetch.request_id
    ]


def test_a_start_group_that_ended_at_the_largest_location_costs_one_empty_fetch() -> None:
    """3/24 may have been the group's last object: nothing comes live, group 4 starts,
    and the FETCH of the rest comes back empty - nothing changes for the viewer."""
    lab = Lab(linger=1.0)
    origin, viewer, sub_id, joining_id, _ = cold_join(lab)
    answer_fetch(lab, origin, joining_id, 3, range(25))
    live(lab, origin, sub_id, 4, range(1), fin=False)
    (fetch,) = [f for f in events_of(origin.events, FetchRequested) if f.request_id != joining_id]
    server = origin.pair.server
    server.accept_fetch(fetch.request_id, end_location=Location(3, 25))
    server.end_fetch_stream(server.open_fetch_stream(fetch.request_id))
    lab.run()
    assert received(viewer) == [(3, o) for o in range(25)] + [(4, 0)]
    assert not events_of(viewer.events, SubgroupStreamEnded)
    assert lab.relay.statistics()["start_group_repairs"] == 0
