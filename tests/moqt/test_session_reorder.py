"""Whatever order the network delivers streams in (order kept only within a stream),
every object reaches its subscription exactly once: data that overtakes the
SUBSCRIBE_OK/PUBLISH defining its track alias is held and released, and a
PUBLISH_DONE that overtakes its streams does not lose them."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moqt.events import (
    ObjectReceived,
    PublishDoneReceived,
    PublishRequested,
    SessionClosed,
    SubgroupStreamEnded,
    SubscribeRequested,
)
from moqt.types import Location
from moqt.version import DRAFT_14, DRAFT_16
from tests.moqt.harness import events_of, session_pair

VERSIONS = [pytest.param(DRAFT_16, id="d16"), pytest.param(DRAFT_14, id="d14")]


@pytest.mark.parametrize("version", VERSIONS)
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), chunk=st.sampled_from([None, 1, 3]))
def test_objects_survive_any_cross_stream_order(version: int, seed: int, chunk: int | None) -> None:
    rng = random.Random(seed)
    pair = session_pair(version, chunk_size=chunk)
    pair.take()
    tracks = [b"video", b"audio"]
    rids = [pair.client.subscribe((b"live",), t) for t in tracks]
    pair.deliver_until_idle(rng=rng)
    _, s = pair.take()
    assert [e.request_id for e in events_of(s, SubscribeRequested)] == rids

    expected: set[tuple[int, int, int, bytes]] = set()
    for rid in rids:
        pair.server.accept_subscribe(rid, largest=Location(0, 0))
        # Data goes out right behind SUBSCRIBE_OK and may overtake it.
        for group in (1, 2):
            h = pair.server.open_subgroup(rid, group, 0)
            for obj in range(3):
                payload = b"%d/%d/%d" % (rid, group, obj)
                pair.server.write_object(h, obj, payload)
                expected.add((rid, group, obj, payload))
            pair.server.end_subgroup(h)
        pair.server.send_object_datagram(rid, 3, 0, b"dg%d" % rid)
        expected.add((rid, 3, 0, b"dg%d" % rid))
        pair.server.publish_done(rid)
    pair.deliver_until_idle(rng=rng)
    c, _ = pair.take()
    assert not events_of(c, SessionClosed)
    got = [(o.request_id, o.group_id, o.object_id, o.payload) for o in events_of(c, ObjectReceived)]
    assert sorted(got) == sorted(expected)  # each exactly once
    assert sorted(e.request_id for e in events_of(c, PublishDoneReceived)) == sorted(rids)
    assert len(events_of(c, SubgroupStreamEnded)) == 4
    # Late objects are still accepted for a while after PUBLISH_DONE, then forgotten.
    assert pair.client.get_timer() is not None
    pair.advance(10.0)
    assert pair.client.get_timer() is None


@pytest.mark.parametrize("version", VERSIONS)
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_publish_data_before_publish_arrives(version: int, seed: int) -> None:
    rng = random.Random(seed)
    pair = session_pair(version)
    pair.take()
    rid = pair.client.publish((b"live",), b"cam", track_alias=7)
    h = pair.client.open_subgroup(rid, 0)
    for i in range(4):
        pair.client.write_object(h, i, b"o%d" % i)
    pair.client.end_subgroup(h)
    pair.deliver_until_idle(rng=rng)
    _, s = pair.take()
    assert events_of(s, PublishRequested)[0].track_alias == 7
    assert [o.payload for o in events_of(s, ObjectReceived)] == [b"o0", b"o1", b"o2", b"o3"]
