"""Random programs of client actions against the relay core: nothing may raise out of
the relay, and once every session is gone the relay holds nothing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moqt import DRAFT_14, DRAFT_16
from moqt.errors import LocalError
from moqt.events import SubscribeRequested
from moqt.types import Location, SubscriptionFilter

from .relay_lab import NS, Client, RelayLab

TRACKS = (b"a", b"b")
FILTERS = (
    SubscriptionFilter.largest_object(),
    SubscriptionFilter.next_group_start(),
    SubscriptionFilter.absolute_start(Location(1, 0)),
    SubscriptionFilter.absolute_range(Location(0, 1), 2),
)

_write = st.tuples(st.just("write"), st.integers(0, 2), st.integers(0, 3), st.integers(1, 4))
action = st.one_of(
    _write,
    _write,
    st.tuples(st.just("publish"), st.integers(0, 2), st.sampled_from(TRACKS)),
    st.tuples(st.just("announce"), st.integers(0, 2)),
    st.tuples(st.just("subscribe"), st.integers(0, 2), st.sampled_from(TRACKS), st.integers(0, 3)),
    st.tuples(st.just("unsubscribe"), st.integers(0, 2)),
    st.tuples(st.just("fetch"), st.integers(0, 2), st.sampled_from(TRACKS)),
    st.tuples(st.just("join"), st.integers(0, 2)),
    st.tuples(st.just("watch"), st.integers(0, 2)),
    st.tuples(st.just("status"), st.integers(0, 2), st.sampled_from(TRACKS)),
    st.tuples(st.just("done"), st.integers(0, 2)),
    st.tuples(st.just("close"), st.integers(0, 2)),
    st.tuples(st.just("tick"), st.floats(0.1, 5.0)),
)


class Actor:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.publishing: list[int] = []  # request ids we may send objects on
        self.subscriptions: list[int] = []
        self.next_object: dict[tuple[int, int], int] = {}
        self.closed = False


def perform(lab: RelayLab, actors: list[Actor], step: tuple[object, ...]) -> None:
    kind = step[0]
    if kind == "tick":
        lab.advance(float(step[1]))  # type: ignore[arg-type]
        return
    actor = actors[int(step[1])]  # type: ignore[call-overload]
    session = actor.client.session
    if actor.closed:
        return
    if kind == "publish":
        actor.publishing.append(session.publish(NS, step[2]))  # type: ignore[arg-type]
    elif kind == "announce":
        session.publish_namespace(NS)
    elif kind == "subscribe":
        flt = FILTERS[int(step[3])]  # type: ignore[call-overload]
        actor.subscriptions.append(session.subscribe(NS, step[2], filter=flt))  # type: ignore[arg-type]
    elif kind == "unsubscribe" and actor.subscriptions:
        session.unsubscribe(actor.subscriptions.pop(0))
    elif kind == "write" and actor.publishing:
        rid = actor.publishing[-1]
        group = int(step[2])  # type: ignore[call-overload]
        first = actor.next_object.get((rid, group), 0)
        count = int(step[3])  # type: ignore[call-overload]
        handle = session.open_subgroup(rid, group, 0)
        for i in range(first, first + count):
            session.write_object(handle, i, b"%d.%d" % (group, i))
        session.end_subgroup(handle)
        actor.next_object[(rid, group)] = first + count
    elif kind == "fetch":
        session.fetch(NS, step[2], Location(0, 0), Location(3, 0))  # type: ignore[arg-type]
    elif kind == "join" and actor.subscriptions:
        session.joining_fetch(actor.subscriptions[-1], 1)
    elif kind == "watch":
        session.subscribe_namespace((b"live",))
    elif kind == "status":
        session.track_status(NS, step[2])  # type: ignore[arg-type]
    elif kind == "done" and actor.publishing:
        session.publish_done(actor.publishing.pop())
    elif kind == "close":
        session.close()
        actor.closed = True


def serve_upstream(actors: list[Actor]) -> None:
    """Publishers that announced answer the relay's SUBSCRIBEs (and may then write)."""
    for actor in actors:
        for event in actor.client.take():
            if isinstance(event, SubscribeRequested) and not actor.closed:
                try:
                    actor.client.session.accept_subscribe(event.request_id)
                    actor.publishing.append(event.request_id)
                except LocalError:
                    pass


@pytest.mark.parametrize("version", [DRAFT_16, DRAFT_14])
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(program=st.lists(action, min_size=1, max_size=30))
def test_random_programs_never_break_the_relay(
    version: int, program: list[tuple[object, ...]]
) -> None:
    lab = RelayLab(version)
    actors = [Actor(lab.client()) for _ in range(3)]
    for step in program:
        try:
            perform(lab, actors, step)
        except LocalError:
            pass  # the client's own session refused an invalid action: not the relay's
        lab.run()
        serve_upstream(actors)
        lab.run()
    for actor in actors:
        if not actor.closed:
            actor.client.session.close()
    lab.advance(10.0)
    stats = lab.relay.statistics()
    assert stats["sessions"] == 0
    assert stats["subscriptions"] == 0
    assert stats["upstream_subscriptions"] == 0
