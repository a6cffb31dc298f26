"""Two of our sessions driven by random but legal application calls, with random
cross-stream reordering, never accuse each other of a protocol violation: whatever
crosses on the wire (answers vs. cancellations, data vs. PUBLISH_DONE, ...), both
sides stay open, and misuse is only ever reported as LocalError."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from moqt.errors import LocalError, RequestErrorCode
from moqt.events import (
    Event,
    FetchRequested,
    PublishNamespaceRequested,
    PublishRequested,
    SessionClosed,
    SubscribeAccepted,
    SubscribeNamespaceRequested,
    SubscribeRequested,
    TrackStatusRequested,
)
from moqt.session import SubgroupHandle
from moqt.types import Location
from moqt.version import DRAFT_14, DRAFT_16
from tests.moqt.harness import SessionPair, session_pair

TRACKS = [b"a", b"b", b"c"]


class TwoSessions(RuleBasedStateMachine):
    version = DRAFT_16

    @initialize(seed=st.integers(0, 2**32 - 1), chunk=st.sampled_from([None, 1, 5]))
    def start(self, seed: int, chunk: int | None) -> None:
        self.rng = random.Random(seed)
        self.pair: SessionPair = session_pair(self.version, chunk_size=chunk)
        self.pair.take()
        self.pending: list[Event] = []  # server-side requests to answer
        self.subs: list[int] = []  # client subscriptions
        self.accepted: list[int] = []  # server side, subscriptions it publishes
        self.fetches: list[int] = []
        self.handles: list[SubgroupHandle] = []
        self.next_group = 0
        self.published: list[int] = []  # client PUBLISHes
        self.offers: list[int] = []  # server PUBLISHes the client has not answered
        self.server_published: list[int] = []
        self.ns_subs: list[int] = []  # server-accepted SUBSCRIBE_NAMESPACE ids

    def _call(self, fn: object, *args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)  # type: ignore[operator]
        except LocalError:
            return None

    def _pump(self) -> None:
        self.pair.deliver_until_idle(rng=self.rng)
        c, s = self.pair.take()
        assert not any(isinstance(e, SessionClosed) for e in c + s), (c, s)
        self.pending += s
        for ev in c:
            if isinstance(ev, SubscribeAccepted):
                self.subs.append(ev.request_id)
            elif isinstance(ev, PublishRequested):
                self.offers.append(ev.request_id)

    @rule(track=st.sampled_from(TRACKS))
    def subscribe(self, track: bytes) -> None:
        self._call(self.pair.client.subscribe, (b"ns",), track)
        self._pump()

    @rule(track=st.sampled_from(TRACKS), end=st.integers(0, 4))
    def fetch(self, track: bytes, end: int) -> None:
        rid = self._call(self.pair.client.fetch, (b"ns",), track, Location(0, 0), Location(end, 0))
        if isinstance(rid, int):
            self.fetches.append(rid)
        self._pump()

    @rule()
    def other_requests(self) -> None:
        self._call(self.pair.client.track_status, (b"ns",), b"a")
        self._call(self.pair.client.publish_namespace, (b"ns", b"%d" % self.rng.randrange(9)))
        self._call(self.pair.client.subscribe_namespace, (b"p%d" % self.rng.randrange(3),))
        self._pump()

    @rule(accept=st.booleans())
    def answer(self, accept: bool) -> None:
        if not self.pending:
            return
        ev = self.pending.pop(self.rng.randrange(len(self.pending)))
        server = self.pair.server
        rid = getattr(ev, "request_id", None)
        if rid is None:
            return
        if not accept and isinstance(
            ev,
            SubscribeRequested
            | FetchRequested
            | TrackStatusRequested
            | PublishNamespaceRequested
            | SubscribeNamespaceRequested
            | PublishRequested,
        ):
            self._call(server.reject_request, rid, RequestErrorCode.DOES_NOT_EXIST)
        elif isinstance(ev, SubscribeRequested):
            if self._call(server.accept_subscribe, rid, largest=Location(1, 1)) is not None:
                self.accepted.append(rid)
        elif isinstance(ev, FetchRequested):
            handle = self._call(server.open_fetch_stream, rid)
            if handle is not None:
                self._call(server.write_fetch_object, handle, 0, 0, 0, b"x")
                self._call(server.end_fetch_stream, handle)
            self._call(server.accept_fetch, rid, end_location=Location(1, 0))
        elif isinstance(ev, TrackStatusRequested):
            self._call(server.answer_track_status, rid)
        elif isinstance(ev, PublishNamespaceRequested):
            self._call(server.accept_publish_namespace, rid)
        elif isinstance(ev, SubscribeNamespaceRequested):
            self._call(server.accept_subscribe_namespace, rid)
            self.ns_subs.append(rid)
        elif isinstance(ev, PublishRequested):
            self._call(server.accept_publish, rid, forward=self.rng.random() < 0.8)
        self._pump()

    @rule(track=st.sampled_from(TRACKS), objects=st.integers(0, 3))
    def client_publishes(self, track: bytes, objects: int) -> None:
        client = self.pair.client
        rid = self._call(client.publish, (b"pub",), track)
        if not isinstance(rid, int):
            return
        self.published.append(rid)
        handle = self._call(client.open_subgroup, rid, 0)
        if isinstance(handle, SubgroupHandle):
            for i in range(objects):
                self._call(client.write_object, handle, i, b"p")
            self._call(client.end_subgroup, handle)
        self._pump()

    @rule(track=st.sampled_from(TRACKS), objects=st.integers(0, 2))
    def server_publishes(self, track: bytes, objects: int) -> None:
        server = self.pair.server
        rid = self._call(server.publish, (b"srv",), track, largest=Location(0, 1))
        if not isinstance(rid, int):
            return
        self.server_published.append(rid)
        handle = self._call(server.open_subgroup, rid, 1)
        if isinstance(handle, SubgroupHandle):
            for i in range(objects):
                self._call(server.write_object, handle, i, b"s")
            self._call(server.end_subgroup, handle)
        self._pump()

    @rule(accept=st.booleans(), later=st.sampled_from(["keep", "unsubscribe", "done"]))
    def client_answers_publish(self, accept: bool, later: str) -> None:
        if not self.offers:
            return
        rid = self.offers.pop(self.rng.randrange(len(self.offers)))
        client = self.pair.client
        if accept:
            self._call(client.accept_publish, rid)
        else:
            self._call(client.reject_request, rid, RequestErrorCode.UNINTERESTED)
        if later == "unsubscribe":
            self._call(client.unsubscribe, rid)
        elif later == "done" and rid in self.server_published:
            self._call(self.pair.server.publish_done, rid)
        self._pump()

    @rule()
    def client_ends_publish(self) -> None:
        if self.published:
            rid = self.published.pop(self.rng.randrange(len(self.published)))
            self._call(self.pair.client.publish_done, rid)
            self._pump()

    @rule(start=st.integers(0, 3), absolute=st.booleans())
    def joining_fetch(self, start: int, absolute: bool) -> None:
        if self.subs:
            rid = self._call(
                self.pair.client.joining_fetch, self.rng.choice(self.subs), start, absolute=absolute
            )
            if isinstance(rid, int):
                self.fetches.append(rid)
            self._pump()

    @rule(n=st.integers(0, 5), withdraw=st.booleans())
    def announce(self, n: int, withdraw: bool) -> None:
        if self.ns_subs and self.version == DRAFT_16:
            rid = self.rng.choice(self.ns_subs)
            prefix = (b"p%d" % 0,)
            self._call(self.pair.server.announce_namespace, rid, (*prefix, b"%d" % n))
            if withdraw:
                self._call(self.pair.server.withdraw_namespace, rid, (*prefix, b"%d" % n))
            self._pump()

    @rule(objects=st.integers(1, 3), datagram=st.booleans(), end=st.booleans())
    def send_data(self, objects: int, datagram: bool, end: bool) -> None:
        if not self.accepted:
            return
        rid = self.rng.choice(self.accepted)
        self.next_group += 1
        server = self.pair.server
        if datagram:
            self._call(server.send_object_datagram, rid, self.next_group, 0, b"d")
        handle = self._call(server.open_subgroup, rid, self.next_group)
        if isinstance(handle, SubgroupHandle):
            for i in range(objects):
                self._call(server.write_object, handle, i, b"o%d" % i)
            if end:
                self._call(server.end_subgroup, handle)
            else:
                self.handles.append(handle)
        self._pump()

    @rule()
    def publisher_ends(self) -> None:
        if self.accepted:
            rid = self.accepted.pop(self.rng.randrange(len(self.accepted)))
            self._call(self.pair.server.publish_done, rid)
            self._pump()

    @rule()
    def subscriber_ends(self) -> None:
        if self.subs:
            rid = self.subs.pop(self.rng.randrange(len(self.subs)))
            self._call(self.pair.client.unsubscribe, rid)
        if self.fetches:
            rid = self.fetches.pop(self.rng.randrange(len(self.fetches)))
            self._call(self.pair.client.fetch_cancel, rid)
        self._pump()

    @rule()
    def update(self) -> None:
        if self.subs:
            self._call(self.pair.client.update_subscription, self.rng.choice(self.subs), priority=5)
            self._pump()

    @rule()
    def time_passes(self) -> None:
        self.pair.advance(3.0)
        c, s = self.pair.take()
        assert not any(isinstance(e, SessionClosed) for e in c + s), (c, s)
        self.pending += s

    @invariant()
    def both_open(self) -> None:
        if hasattr(self, "pair"):
            assert not self.pair.client.closed and not self.pair.server.closed


class TwoSessions14(TwoSessions):
    version = DRAFT_14


_SETTINGS = settings(
    max_examples=int(os.environ.get("MOQT_FUZZ_EXAMPLES", "100")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize("machine", [TwoSessions, TwoSessions14], ids=["d16", "d14"])
def test_random_legal_use_never_violates(machine: type[RuleBasedStateMachine]) -> None:
    case = machine.TestCase
    case.settings = _SETTINGS
    case().runTest()
