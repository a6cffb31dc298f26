"""Request-id rules: parity, increments, MAX_REQUEST_ID, REQUESTS_BLOCKED (draft-16
"Request ID", "MAX_REQUEST_ID", "REQUESTS_BLOCKED"; draft-14 the same)."""

from __future__ import annotations

import pytest

from moqt import messages as m
from moqt.errors import SessionCloseCode
from moqt.events import RequestsUnblocked, SubscribeRequested
from moqt.session import RequestBlockedError
from moqt.version import DRAFT_14, DRAFT_16
from tests.moqt.harness import RawPeer, closed_with, events_of, session_pair

VERSIONS = [pytest.param(DRAFT_16, id="d16"), pytest.param(DRAFT_14, id="d14")]


def _server(version: int, **kwargs: object) -> RawPeer:
    peer = RawPeer(version, **kwargs)  # type: ignore[arg-type]
    peer.setup()
    peer.take()
    return peer


@pytest.mark.parametrize("version", VERSIONS)
def test_ids_are_even_for_the_client_odd_for_the_server_and_step_by_two(version: int) -> None:
    pair = session_pair(version)
    assert [pair.client.track_status((b"a",), b"t") for _ in range(3)] == [0, 2, 4]
    assert [pair.server.track_status((b"a",), b"t") for _ in range(3)] == [1, 3, 5]
    pair.deliver_until_idle()
    assert not pair.client.closed and not pair.server.closed


@pytest.mark.parametrize("version", VERSIONS)
def test_wrong_parity_is_invalid_request_id(version: int) -> None:
    peer = _server(version)
    peer.send(m.Subscribe(1, (b"a",), b"t"))
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.INVALID_REQUEST_ID


def test_draft14_ids_must_arrive_in_sequence() -> None:
    peer = _server(DRAFT_14)
    peer.send(m.Subscribe(2, (b"a",), b"t"))  # expected 0
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.INVALID_REQUEST_ID


def test_draft16_ids_may_arrive_out_of_order_across_streams() -> None:
    # SUBSCRIBE_NAMESPACE (id 0) travels on its own bidi stream and may arrive after
    # the SUBSCRIBE (id 2) sent later on the control stream.
    peer = _server(DRAFT_16)
    peer.send(m.Subscribe(2, (b"a",), b"t"))
    peer.send(m.SubscribeNamespace(0, (b"p",)), stream_id=4)
    events = peer.take()
    assert [type(e).__name__ for e in events] == [
        "SubscribeRequested",
        "SubscribeNamespaceRequested",
    ]
    peer.send(m.Subscribe(4, (b"a",), b"u"))
    assert events_of(peer.take(), SubscribeRequested)[0].request_id == 4


@pytest.mark.parametrize("version", VERSIONS)
def test_reused_id_is_invalid_request_id(version: int) -> None:
    peer = _server(version)
    peer.send(m.Subscribe(0, (b"a",), b"t"))
    assert events_of(peer.take(), SubscribeRequested)
    peer.send(m.Subscribe(0, (b"a",), b"u"))  # reused
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.INVALID_REQUEST_ID
    if version == DRAFT_16:
        peer = _server(version)
        peer.send(m.Subscribe(4, (b"a",), b"t"))  # ahead of 0 and 2: tolerated
        peer.send(m.Subscribe(4, (b"a",), b"u"))  # but not twice
        close = closed_with(peer.take())
        assert close is not None and close.code == SessionCloseCode.INVALID_REQUEST_ID


@pytest.mark.parametrize("version", VERSIONS)
def test_request_at_the_limit_is_too_many_requests(version: int) -> None:
    peer = _server(version, max_request_id=4)
    peer.send(m.Subscribe(0, (b"a",), b"t0"))
    peer.send(m.Subscribe(2, (b"a",), b"t1"))
    assert len(events_of(peer.take(), SubscribeRequested)) == 2
    peer.send(m.Subscribe(4, (b"a",), b"t2"))
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.TOO_MANY_REQUESTS


@pytest.mark.parametrize("version", VERSIONS)
def test_blocked_request_sends_requests_blocked_once_and_unblocks(version: int) -> None:
    pair = session_pair(version, server_kwargs={"max_request_id": 4})
    pair.take()
    assert pair.client.requests_available == 2
    pair.client.track_status((b"a",), b"t")
    pair.client.track_status((b"a",), b"t")
    assert pair.client.requests_available == 0
    with pytest.raises(RequestBlockedError):
        pair.client.track_status((b"a",), b"t")
    with pytest.raises(RequestBlockedError):
        pair.client.track_status((b"a",), b"t")
    sent = pair.c.transport.sent_bytes[0]
    # Exactly one REQUESTS_BLOCKED(4) went out for this limit.
    assert bytes(sent).count(m.encode_control(m.RequestsBlocked(4), version)) == 1
    pair.deliver_until_idle()
    # The server answers the two requests; each finished request frees an id, which
    # it grants back (the blocked client learns of the first raise only once).
    _, s = pair.take()
    for ev in s:
        pair.server.answer_track_status(ev.request_id)  # type: ignore[attr-defined]
    pair.deliver_until_idle()
    c, _ = pair.take()
    unblocked = events_of(c, RequestsUnblocked)
    assert [u.max_request_id for u in unblocked] == [6]
    assert pair.client.track_status((b"a",), b"t") == 4


@pytest.mark.parametrize("version", VERSIONS)
def test_finished_requests_are_granted_back(version: int) -> None:
    pair = session_pair(version, server_kwargs={"max_request_id": 8})
    pair.take()
    for _ in range(20):
        rid = pair.client.track_status((b"a",), b"t")
        pair.deliver_until_idle()
        pair.server.answer_track_status(rid)
        pair.deliver_until_idle()
    assert not pair.client.closed
    assert pair.client.requests_available >= 2


@pytest.mark.parametrize("version", VERSIONS)
def test_max_request_id_must_increase(version: int) -> None:
    peer = _server(version)
    peer.send(m.MaxRequestId(100))  # equal to the setup value
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION


@pytest.mark.parametrize("version", VERSIONS)
def test_reply_for_a_request_never_sent_is_a_violation(version: int) -> None:
    peer = _server(version)
    peer.send(m.SubscribeOk(1, 7))  # the server never sent request 1
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION
