"""Every downstream subscriber of the relay goes through its own scheduler.

Real sessions over in-memory pipes (``relay_lab``); one viewer's relay->viewer
direction is a throttled :class:`Link` whose backlog the relay sees, as the
QUIC adapters report theirs. The other clients are unthrottled.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from mesh.relay import SchedulerLimits, deliver_all_limits
from mesh.relay._relay import Peer
from moqt import DRAFT_14, DRAFT_16
from moqt.errors import PublishDoneCode
from moqt.events import (
    Event,
    ObjectReceived,
    PublishAccepted,
    PublishDoneReceived,
    PublishRequested,
    SubgroupStreamEnded,
    SubgroupStreamReset,
    SubscribeAccepted,
)
from moqt.session import SubgroupHandle
from tests.moqt.harness import events_of, session_pair

from .congestion_link import Link
from .relay_lab import NS, Client, RelayLab

VERSIONS = [pytest.param(DRAFT_16, id="d16"), pytest.param(DRAFT_14, id="d14")]


class SlowViewer:
    """A viewer attached to the lab's relay whose incoming direction the test throttles."""

    def __init__(self, lab: RelayLab, name: str = "slow") -> None:
        self.lab = lab
        self.pair = session_pair(lab.version, connect=False)
        self.link = Link(self.pair)
        self.peer: Peer = lab.relay.attach(self.pair.server, name, send_backlog=self.link.backlog)
        self.seen = 0
        self.pair.c.events += self.pair.client.initiate(self.pair.now)
        self.pair.s.events += self.pair.server.initiate(self.pair.now)
        self.drain()

    @property
    def events(self) -> list[Event]:
        return self.pair.c.events

    def _feed(self) -> bool:
        new = self.pair.s.events[self.seen :]
        self.seen = len(self.pair.s.events)
        for event in new:
            self.lab.relay.handle_event(self.peer, event)
        return bool(new)

    def drain(self, budget: int | None = None) -> None:
        """Move what the viewer sends, and at most ``budget`` bytes to it, then let the
        relay refill the link (the node does that whenever ACKs arrive)."""
        for _ in range(1000):
            self.pair.now = self.lab.now
            self.link.deliver(budget)
            moved = self._feed()
            self.lab.relay.pump(self.peer)
            if budget is not None or not moved:
                break
        self.lab.run()

    def received(self) -> Iterator[tuple[bytes, int, int]]:
        names = self.names
        for e in self.events:
            if isinstance(e, ObjectReceived):
                yield names[e.request_id], e.group_id, e.object_id

    names: dict[int, bytes] = {}


def publisher(lab: RelayLab, *names: bytes) -> tuple[Client, dict[bytes, int]]:
    pub = lab.client()
    rids = {name: pub.session.publish(NS, name) for name in names}
    lab.run()
    assert len(events_of(pub.take(), PublishAccepted)) == len(names)
    return pub, rids


class GroupWriter:
    """Writes one track's objects in order, a new group (subgroup stream) every ``per_group``."""

    def __init__(self, pub: Client, request_id: int, per_group: int = 25) -> None:
        self.pub, self.request_id, self.per_group = pub, request_id, per_group
        self.handle: SubgroupHandle | None = None

    def write(self, tick: int, size: int) -> None:
        group, obj = divmod(tick, self.per_group)
        if obj == 0:
            self.end()
            self.handle = self.pub.session.open_subgroup(self.request_id, group, 0)
        assert self.handle is not None
        self.pub.session.write_object(self.handle, obj, bytes(size))

    def end(self) -> None:
        if self.handle is not None:
            self.pub.session.end_subgroup(self.handle)
            self.handle = None


def subscribe(
    viewer: SlowViewer, name: bytes, priority: int = 128, delivery_timeout: int | None = None
) -> int:
    rid = viewer.pair.client.subscribe(
        NS, name, priority=priority, delivery_timeout=delivery_timeout
    )
    viewer.names = {**viewer.names, rid: name}
    viewer.drain()
    assert events_of(viewer.events, SubscribeAccepted)
    return rid


@pytest.mark.parametrize("version", VERSIONS)
def test_a_slow_viewer_loses_low_priority_groups_and_a_fast_one_nothing(version: int) -> None:
    lab = RelayLab(version, scheduler=SchedulerLimits(backlog_threshold=4000, skip_after=0.1))
    pub, rids = publisher(lab, b"audio", b"video")
    slow = SlowViewer(lab)
    subscribe(slow, b"audio")
    subscribe(slow, b"video")
    fast = lab.client()
    fast.session.subscribe(NS, b"video")
    lab.run()
    handles: dict[bytes, object] = {}
    for tick in range(100):  # 4 s at 25 fps, a group per second
        lab.now += 0.04
        group, obj = divmod(tick, 25)
        for name, size, prio in ((b"audio", 200, 0), (b"video", 3000, 128)):
            if obj == 0:
                if name in handles:
                    pub.session.end_subgroup(handles[name])  # type: ignore[arg-type]
                handles[name] = pub.session.open_subgroup(rids[name], group, 0, priority=prio)
            pub.session.write_object(handles[name], obj, bytes(size))  # type: ignore[arg-type]
        lab.run()
        slow.drain(2000)  # ~400 kbit/s: audio fits, video does not
    for handle in handles.values():
        pub.session.end_subgroup(handle)  # type: ignore[arg-type]
    lab.run()
    for _ in range(50):
        lab.now += 0.04
        slow.drain(20_000)
    got = list(slow.received())
    audio = [g for name, g, _ in got if name == b"audio"]
    video = [g for name, g, _ in got if name == b"video"]
    assert len(audio) == 100  # the highest priority whole
    assert 0 < len(video) < 100
    resets = events_of(slow.events, SubgroupStreamReset)
    assert resets  # stale video groups were abandoned as whole streams
    assert len([e for e in events_of(fast.events, ObjectReceived)]) == 100
    stats = lab.relay.statistics()
    assert stats["drops_stale_group"] > 0
    assert stats["objects_in"] == 200
    peer_stats = slow.peer.scheduler.statistics()
    # Written objects of a stream reset before they left were never delivered.
    assert peer_stats.objects_sent >= len(got) and peer_stats.queued_objects == 0
    ended = {e.group_id for e in events_of(slow.events, SubgroupStreamEnded)}
    assert ended  # complete groups ended with FIN


@pytest.mark.parametrize("version", VERSIONS)
def test_a_plain_relay_delivers_everything_unless_the_subscriber_set_a_delivery_timeout(
    version: int,
) -> None:
    """draft-16 DELIVERY TIMEOUT: with none negotiated every object is delivered (late);
    with one, a subgroup whose next object waited longer is reset and never reopened."""
    lab = RelayLab(version, scheduler=replace(deliver_all_limits(), backlog_threshold=4000))
    pub, rids = publisher(lab, b"video")
    patient, hurried = SlowViewer(lab, "patient"), SlowViewer(lab, "hurried")
    subscribe(patient, b"video")
    subscribe(hurried, b"video", delivery_timeout=200)
    video = GroupWriter(pub, rids[b"video"])
    for tick in range(100):  # 4 s at 25 fps, a group per second, 600 kbit/s
        lab.now += 0.04
        video.write(tick, 3000)
        lab.run()
        for viewer in (patient, hurried):
            viewer.drain(2000)  # 400 kbit/s: both fall further behind every second
    video.end()
    lab.run()
    for _ in range(100):
        lab.now += 0.04
        for viewer in (patient, hurried):
            viewer.drain(20_000)
    # The patient viewer got every object, in order, each group FIN'd: only late.
    assert list(patient.received()) == [(b"video", *divmod(t, 25)) for t in range(100)]
    assert not events_of(patient.events, SubgroupStreamReset)
    assert patient.peer.scheduler.statistics().dropped == 0
    # The hurried one lost what waited past 200 ms, as whole reset streams.
    stats = hurried.peer.scheduler.statistics()
    assert stats.dropped_delivery_timeout > 0 and stats.dropped == stats.dropped_delivery_timeout
    got = list(hurried.received())
    assert 0 < len(got) < 100
    for group in {g for _, g, _ in got}:
        ids = [o for _, g, o in got if g == group]
        assert ids == list(range(len(ids)))  # a gap-free prefix of each stream
    assert events_of(hurried.events, SubgroupStreamReset)
    assert lab.relay.statistics()["drops_delivery_timeout"] == stats.dropped_delivery_timeout


@pytest.mark.parametrize("version", VERSIONS)
def test_a_viewer_that_stays_too_far_behind_is_ended(version: int) -> None:
    limits = SchedulerLimits(backlog_threshold=2000, skip_after=0.1, max_lag=1.0,
                             too_far_behind_after=2.0)  # fmt: skip
    lab = RelayLab(version, scheduler=limits)
    pub, rids = publisher(lab, b"video")
    slow = SlowViewer(lab)
    subscribe(slow, b"video")
    video = GroupWriter(pub, rids[b"video"])
    for tick in range(150):  # 6 s; the viewer never reads again
        lab.now += 0.04
        video.write(tick, 1500)
        lab.run()
        lab.relay.poll()
    slow.drain()
    done = events_of(slow.events, PublishDoneReceived)
    assert [e.code for e in done] == [PublishDoneCode.TOO_FAR_BEHIND]
    assert not slow.peer.downstream
    stats = lab.relay.statistics()
    assert stats["subscriptions"] == 0 and stats["subscribers_too_far_behind"] == 1
    assert stats["drops_too_far_behind"] + stats["drops_stale_group"] > 0


@pytest.mark.parametrize("version", VERSIONS)
def test_the_subscriber_priority_of_publish_ok_orders_what_the_relay_pushes(version: int) -> None:
    lab = RelayLab(version, scheduler=SchedulerLimits(backlog_threshold=1, skip_after=9))
    pub, rids = publisher(lab, b"audio", b"video")
    slow = SlowViewer(lab)
    slow.pair.client.subscribe_namespace(NS)
    slow.drain()
    offers = events_of(slow.events, PublishRequested)
    assert sorted(e.name for e in offers) == [b"audio", b"video"]
    for offer in offers:  # the viewer wants audio first, whatever the publisher says
        priority = 0 if offer.name == b"audio" else 200
        slow.pair.client.accept_publish(offer.request_id, priority=priority)
        slow.names = {**slow.names, offer.request_id: offer.name}
    slow.drain()
    video = pub.session.open_subgroup(rids[b"video"], 0, 0, priority=128)
    audio = pub.session.open_subgroup(rids[b"audio"], 0, 0, priority=128)
    pub.session.write_object(video, 0, bytes(100))  # goes out at once: the link is busy
    pub.session.write_object(video, 1, bytes(100))
    pub.session.write_object(audio, 0, bytes(100))
    lab.run()
    for _ in range(4):
        slow.drain(10_000)
    assert list(slow.received()) == [(b"video", 0, 0), (b"audio", 0, 0), (b"video", 0, 1)]


def test_relay_links_are_scheduled_to_leave_drops_to_the_edge() -> None:
    """A session marked as a relay link gets the lenient limits; a viewer keeps the edge's."""
    from mesh.relay import Relay, RelayConfig
    from mesh.topology import is_relay_link_path
    from moqt.session import Session
    from tests.moqt.harness import MemoryTransport

    relay = Relay(RelayConfig())
    viewer = relay.attach(
        Session(MemoryTransport(is_client=False), is_client=False, version=None), "v"
    )
    link = relay.attach(
        Session(MemoryTransport(is_client=False), is_client=False, version=None), "l"
    )
    relay.mark_relay_link(link)
    assert viewer.scheduler.limits == relay.config.scheduler and not viewer.relay_link
    assert link.scheduler.limits == relay.config.relay_link_scheduler and link.relay_link
    edge, hop = relay.config.scheduler, relay.config.relay_link_scheduler
    assert hop.skip_after > 10 * edge.skip_after and hop.max_queued_bytes > edge.max_queued_bytes
    assert is_relay_link_path("/relay?hops=pop-eu-1") and not is_relay_link_path("/stream/o/lv_1")
    assert not is_relay_link_path("/relay?hops=a&hops=b") and not is_relay_link_path(None)
