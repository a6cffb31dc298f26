"""PopRelay without sockets (real sessions over in-memory pipes, fake clock): linger, tokens
upstream, the joining FETCH, orphaned tracks surviving their upstream."""

from __future__ import annotations

from dataclasses import dataclass, field

from mesh.relay import Peer, Relay, RelayConfig, RelayHooks
from moqt.errors import RequestErrorCode
from moqt.events import (
    Event,
    FetchAccepted,
    FetchRequested,
    ObjectReceived,
    PublishDoneReceived,
    RequestRejected,
    SubscribeAccepted,
    SubscribeRequested,
    Unsubscribed,
)
from moqt.types import FilterType, Location
from moqt.version import DRAFT_16
from pop import PopRelay
from tests.moqt.harness import SessionPair, events_of, session_pair

NS = (b"stream", b"org_test", b"lv_a")
LARGEST = Location(5, 1)


@dataclass
class Side:
    pair: SessionPair
    upstream: bool  # relay holds the client session (an origin) or the server one (a viewer)
    seen: int = 0
    events: list[Event] = field(default_factory=list)  # what the far end (test side) got


class Lab:
    def __init__(self, linger: float) -> None:
        self.now = 100.0
        self.relay = PopRelay(RelayConfig(), linger=linger, clock=lambda: self.now)
        self.sides: list[Side] = []
        self.peers: dict[int, Peer] = {}

    def _add(self, upstream: bool) -> tuple[Side, Peer]:
        pair = session_pair(DRAFT_16, connect=False)
        if upstream:
            peer = self.relay.attach_upstream(pair.client, f"up{len(self.sides)}")
        else:
            peer = self.relay.attach(pair.server, f"v{len(self.sides)}")
        side = Side(pair, upstream)
        self.sides.append(side)
        pair.c.events += pair.client.initiate(pair.now)
        pair.s.events += pair.server.initiate(pair.now)
        self.peers[id(side)] = peer
        self.run()
        return side, peer

    def origin(self) -> tuple[Side, Peer]:
        return self._add(upstream=True)

    def viewer(self) -> Side:
        return self._add(upstream=False)[0]

    def run(self) -> None:
        for _ in range(10_000):
            moved = False
            for side in self.sides:
                side.pair.now = self.now
                moved |= side.pair.step()
                ours, theirs = (
                    (side.pair.c, side.pair.s) if side.upstream else (side.pair.s, side.pair.c)
                )
                new, ours.events = ours.events, []
                for event in new:
                    self.relay.handle_event(self.peers[id(side)], event)
                    moved = True
                side.events += theirs.events
                theirs.events = []
            if not moved:
                return
        raise AssertionError("never idle")

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.relay.poll()
        self.run()


def serve_subscribe(lab: Lab, origin: Side, largest: Location = LARGEST) -> int:
    """Answer the relay's upstream SUBSCRIBE (and refuse the joining FETCH: nothing cached)."""
    request = events_of(origin.events, SubscribeRequested)[-1]
    origin.pair.server.accept_subscribe(request.request_id, largest=largest)
    for fetch in events_of(origin.events, FetchRequested):
        origin.pair.server.reject_request(fetch.request_id, RequestErrorCode.INVALID_RANGE, "none")
    origin.events.clear()
    lab.run()
    return request.request_id


def subscribe(lab: Lab, viewer: Side) -> int:
    rid = viewer.pair.client.subscribe(NS, b"video")
    lab.run()
    return rid


def test_upstream_subscribe_carries_the_token_and_a_joining_fetch() -> None:
    lab = Lab(linger=1.0)
    origin, up = lab.origin()
    lab.relay.route_namespace(up, NS, b"jwt-token")
    viewer = lab.viewer()
    subscribe(lab, viewer)
    request = events_of(origin.events, SubscribeRequested)[0]
    assert [t.value for t in request.auth_tokens] == [b"jwt-token"]
    assert request.filter.type is FilterType.LARGEST_OBJECT
    fetch = events_of(origin.events, FetchRequested)[0]
    assert fetch.joining_request_id == request.request_id and fetch.joining_start == 0
    serve_subscribe(lab, origin)
    assert events_of(viewer.events, SubscribeAccepted)
    assert lab.relay.statistics()["upstream_sessions"] == 1


def test_linger_keeps_the_upstream_and_restarts_when_a_viewer_comes_and_goes() -> None:
    lab = Lab(linger=1.0)
    origin, up = lab.origin()
    lab.relay.route_namespace(up, NS, None)
    first = lab.viewer()
    rid = subscribe(lab, first)
    serve_subscribe(lab, origin)
    first.pair.client.unsubscribe(rid)
    lab.run()
    lab.advance(0.6)
    assert not events_of(origin.events, Unsubscribed)
    # A viewer comes back and leaves again within one poll: the linger restarts.
    second = lab.viewer()
    rid2 = subscribe(lab, second)
    assert events_of(second.events, SubscribeAccepted)  # merged: no new upstream request
    assert not events_of(origin.events, SubscribeRequested)
    second.pair.client.unsubscribe(rid2)
    lab.run()
    lab.advance(0.6)  # 1.2 s after the first leave, 0.6 s after the second
    assert not events_of(origin.events, Unsubscribed)
    lab.advance(0.5)
    assert len(events_of(origin.events, Unsubscribed)) == 1
    assert lab.relay.statistics()["upstream_subscriptions"] == 0


def test_zero_linger_releases_at_once() -> None:
    lab = Lab(linger=0.0)
    origin, up = lab.origin()
    lab.relay.route_namespace(up, NS, None)
    viewer = lab.viewer()
    rid = subscribe(lab, viewer)
    serve_subscribe(lab, origin)
    viewer.pair.client.unsubscribe(rid)
    lab.run()
    assert len(events_of(origin.events, Unsubscribed)) == 1


def test_orphaned_track_survives_its_upstream_and_resumes_at_next_group() -> None:
    lab = Lab(linger=1.0)
    origin, up = lab.origin()
    lab.relay.route_namespace(up, NS, b"tok")
    viewer = lab.viewer()
    subscribe(lab, viewer)
    alias_rid = serve_subscribe(lab, origin)
    handle = origin.pair.server.open_subgroup(alias_rid, 6, 0)
    origin.pair.server.write_object(handle, 0, b"g6o0")
    lab.run()
    assert [e.payload for e in events_of(viewer.events, ObjectReceived)] == [b"g6o0"]
    # The origin goes away: the viewer keeps its subscription, the track is orphaned.
    origin.pair.server.close()
    lab.run()
    assert not events_of(viewer.events, PublishDoneReceived)
    (track,) = lab.relay.orphans()
    # A new upstream takes over from the next group boundary.
    second, up2 = lab.origin()
    lab.relay.route_namespace(up2, NS, None)
    assert lab.relay.resubscribe(track, up2)
    lab.run()
    request = events_of(second.events, SubscribeRequested)[0]
    assert request.filter.type is FilterType.NEXT_GROUP_START
    assert [t.value for t in request.auth_tokens] == [b"tok"]
    rid = serve_subscribe(lab, second, Location(6, 3))
    handle = second.pair.server.open_subgroup(rid, 7, 0)
    second.pair.server.write_object(handle, 0, b"g7o0")
    lab.run()
    got = [(e.group_id, e.payload) for e in events_of(viewer.events, ObjectReceived)]
    assert got == [(6, b"g6o0"), (7, b"g7o0")]
    assert lab.relay.orphans() == []
    assert lab.relay.statistics()["resubscribed_total"] == 1


def test_orphan_without_a_new_upstream_ends_with_publish_done() -> None:
    lab = Lab(linger=1.0)
    origin, up = lab.origin()
    lab.relay.route_namespace(up, NS, None)
    viewer = lab.viewer()
    subscribe(lab, viewer)
    serve_subscribe(lab, origin)
    origin.pair.server.close()
    lab.run()
    (track,) = lab.relay.orphans()
    lab.relay.end_orphan(track, "no upstream for the broadcast")
    lab.run()
    (done,) = events_of(viewer.events, PublishDoneReceived)
    assert done.reason == "no upstream for the broadcast"
    assert lab.relay.orphans() == []


def test_lingering_track_is_not_orphaned() -> None:
    lab = Lab(linger=5.0)
    origin, up = lab.origin()
    lab.relay.route_namespace(up, NS, None)
    viewer = lab.viewer()
    rid = subscribe(lab, viewer)
    serve_subscribe(lab, origin)
    viewer.pair.client.unsubscribe(rid)
    lab.run()
    origin.pair.server.close()
    lab.run()
    assert lab.relay.orphans() == []  # nobody watches it: nothing to re-route


def test_viewer_joining_fetch_waits_for_ours_to_fill_the_cache() -> None:
    lab = Lab(linger=1.0)
    origin, up = lab.origin()
    lab.relay.route_namespace(up, NS, None)
    viewer = lab.viewer()
    rid = subscribe(lab, viewer)
    request = events_of(origin.events, SubscribeRequested)[0]
    (upstream_fetch,) = events_of(origin.events, FetchRequested)
    origin.events.clear()
    origin.pair.server.accept_subscribe(request.request_id, largest=Location(5, 1))
    lab.run()
    assert events_of(viewer.events, SubscribeAccepted)
    # The viewer joins the current group before our own joining FETCH has been answered.
    fid = viewer.pair.client.joining_fetch(rid, 0)
    lab.run()
    assert not events_of(viewer.events, FetchAccepted)
    # The origin answers ours: group 5 objects 0 and 1 land in the POP's cache ...
    server = origin.pair.server
    server.accept_fetch(upstream_fetch.request_id, end_location=Location(5, 2))
    handle = server.open_fetch_stream(upstream_fetch.request_id)
    for obj in (0, 1):
        server.write_fetch_object(handle, 5, 0, obj, b"g5o%d" % obj)
    server.end_fetch_stream(handle)
    lab.run()
    # ... and only then is the viewer's FETCH answered, from the start of the group.
    assert [e.request_id for e in events_of(viewer.events, FetchAccepted)] == [fid]
    fetched = [
        (e.group_id, e.object_id, e.payload)
        for e in events_of(viewer.events, ObjectReceived)
        if e.request_id == fid
    ]
    assert fetched == [(5, 0, b"g5o0"), (5, 1, b"g5o1")]


def test_held_fetch_is_answered_when_ours_never_comes() -> None:
    lab = Lab(linger=1.0)
    origin, up = lab.origin()
    lab.relay.route_namespace(up, NS, None)
    viewer = lab.viewer()
    rid = subscribe(lab, viewer)
    request = events_of(origin.events, SubscribeRequested)[0]
    origin.pair.server.accept_subscribe(request.request_id, largest=Location(5, 1))
    lab.run()
    fid = viewer.pair.client.joining_fetch(rid, 0)
    lab.run()
    assert not events_of(viewer.events, FetchAccepted)
    lab.advance(2.5)  # the origin never answered our FETCH: answer from what we have
    answers = [
        e
        for e in viewer.events
        if isinstance(e, FetchAccepted | RequestRejected) and e.request_id == fid
    ]
    assert len(answers) == 1


def test_the_pop_plugs_into_the_core_through_hooks_not_private_overrides() -> None:
    private = {
        name
        for name in vars(PopRelay)
        if name.startswith("_") and not name.startswith("__") and hasattr(Relay, name)
    }
    assert private == set()
    hooks = {name for name in vars(RelayHooks) if not name.startswith("_")}
    assert hooks and hooks <= set(vars(PopRelay))  # every hook is the POP's own
