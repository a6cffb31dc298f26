"""PUBLISH_NAMESPACE and its replies/DONE/CANCEL; SUBSCRIBE_NAMESPACE (draft-16 on its own
bidi stream with NAMESPACE / NAMESPACE_DONE, draft-14 on the control stream)."""

from __future__ import annotations

import pytest

from moqt import messages as m
from moqt._buffer import Buffer
from moqt._transport import is_bidirectional
from moqt.errors import LocalError, RequestErrorCode, SessionCloseCode
from moqt.events import (
    NamespaceAnnounced,
    NamespaceWithdrawn,
    PublishNamespaceAccepted,
    PublishNamespaceCancelled,
    PublishNamespaceDone,
    PublishNamespaceRequested,
    RequestKind,
    RequestRejected,
    SubscribeNamespaceAccepted,
    SubscribeNamespaceEnded,
    SubscribeNamespaceRequested,
)
from moqt.version import DRAFT_14, DRAFT_16
from tests.moqt.harness import RawPeer, closed_with, events_of, session_pair

VERSIONS = [pytest.param(DRAFT_16, id="d16"), pytest.param(DRAFT_14, id="d14")]
NS = (b"stream", b"org_1")


@pytest.mark.parametrize("version", VERSIONS)
def test_publish_namespace_accept_done(version: int) -> None:
    pair = session_pair(version, chunk_size=1)
    pair.take()
    rid = pair.client.publish_namespace(NS, auth_token=b"k")
    pair.deliver_until_idle()
    _, s = pair.take()
    (req,) = events_of(s, PublishNamespaceRequested)
    assert (req.request_id, req.namespace) == (rid, NS)
    assert [t.value for t in req.auth_tokens] == [b"k"]
    pair.server.accept_publish_namespace(rid)
    pair.deliver_until_idle()
    c, _ = pair.take()
    assert c == [PublishNamespaceAccepted(rid, NS)]
    pair.client.publish_namespace_done(rid)
    pair.deliver_until_idle()
    _, s = pair.take()
    assert s == [PublishNamespaceDone(rid, NS)]


@pytest.mark.parametrize("version", VERSIONS)
def test_publish_namespace_reject_and_cancel(version: int) -> None:
    pair = session_pair(version)
    pair.take()
    a = pair.client.publish_namespace(NS)
    b = pair.client.publish_namespace((b"other",))
    pair.deliver_until_idle()
    pair.server.reject_request(a, RequestErrorCode.UNAUTHORIZED, "no")
    pair.server.accept_publish_namespace(b)
    pair.server.cancel_publish_namespace(b, RequestErrorCode.EXPIRED_AUTH_TOKEN, "expired")
    pair.deliver_until_idle()
    c, _ = pair.take()
    (rej,) = events_of(c, RequestRejected)
    assert rej.kind is RequestKind.PUBLISH_NAMESPACE and rej.error is RequestErrorCode.UNAUTHORIZED
    (cancel,) = events_of(c, PublishNamespaceCancelled)
    assert (cancel.request_id, cancel.namespace, cancel.reason) == (b, (b"other",), "expired")
    assert cancel.code == (0x5 if version == DRAFT_16 else 0x12)
    # After a cancel the publisher does not send PUBLISH_NAMESPACE_DONE.
    before = bytes(pair.c.transport.sent_bytes[0])
    pair.client.publish_namespace_done(b)
    assert bytes(pair.c.transport.sent_bytes[0]) == before


def test_draft16_subscribe_namespace_runs_on_its_own_stream() -> None:
    pair = session_pair(DRAFT_16, chunk_size=1)
    pair.take()
    rid = pair.client.subscribe_namespace((b"stream",), options=1, auth_token=b"t")
    streams = [sid for sid in pair.c.transport.sent_bytes if sid != 0]
    assert len(streams) == 1 and is_bidirectional(streams[0])
    pair.deliver_until_idle()
    _, s = pair.take()
    (req,) = events_of(s, SubscribeNamespaceRequested)
    assert (req.request_id, req.prefix, req.options, req.forward) == (rid, (b"stream",), 1, True)
    pair.server.accept_subscribe_namespace(rid)
    pair.server.announce_namespace(rid, (b"stream", b"org_1"))
    pair.server.announce_namespace(rid, (b"stream", b"org_2"))
    pair.server.withdraw_namespace(rid, (b"stream", b"org_1"))
    pair.deliver_until_idle()
    c, _ = pair.take()
    assert c == [
        SubscribeNamespaceAccepted(rid, (b"stream",)),
        NamespaceAnnounced(rid, (b"stream", b"org_1")),
        NamespaceAnnounced(rid, (b"stream", b"org_2")),
        NamespaceWithdrawn(rid, (b"stream", b"org_1")),
    ]
    # Nothing of it went over the control stream (only SERVER_SETUP is there).
    control = m.decode_control(Buffer(bytes(pair.s.transport.sent_bytes[0])), DRAFT_16)
    assert isinstance(control, m.ServerSetup)
    assert len(m.encode_control(control, DRAFT_16)) == len(pair.s.transport.sent_bytes[0])
    pair.client.unsubscribe_namespace(rid)
    pair.deliver_until_idle()
    _, s = pair.take()
    assert s == [SubscribeNamespaceEnded(rid, (b"stream",), by_peer=True)]
    # An announcement racing with the cancellation is dropped, not an error.
    sent = {k: bytes(v) for k, v in pair.s.transport.sent_bytes.items()}
    pair.server.announce_namespace(rid, (b"stream", b"org_3"))
    assert {k: bytes(v) for k, v in pair.s.transport.sent_bytes.items()} == sent


def test_draft14_subscribe_namespace_on_the_control_stream() -> None:
    pair = session_pair(DRAFT_14)
    pair.take()
    rid = pair.client.subscribe_namespace((b"stream",))
    assert set(pair.c.transport.sent_bytes) == {0}
    pair.deliver_until_idle()
    pair.server.accept_subscribe_namespace(rid)
    # Draft-14 announces matching namespaces with PUBLISH_NAMESPACE.
    with pytest.raises(LocalError):
        pair.server.announce_namespace(rid, (b"stream", b"x"))
    ann = pair.server.publish_namespace((b"stream", b"x"))
    pair.deliver_until_idle()
    c, _ = pair.take()
    assert SubscribeNamespaceAccepted(rid, (b"stream",)) in c
    assert events_of(c, PublishNamespaceRequested)[0].request_id == ann
    pair.client.unsubscribe_namespace(rid)
    pair.deliver_until_idle()
    _, s = pair.take()
    assert s == [SubscribeNamespaceEnded(rid, (b"stream",), by_peer=True)]


@pytest.mark.parametrize("version", VERSIONS)
def test_overlapping_prefix_is_refused(version: int) -> None:
    pair = session_pair(version)
    pair.take()
    a = pair.client.subscribe_namespace((b"stream", b"org"))
    b = pair.client.subscribe_namespace((b"stream",))
    pair.deliver_until_idle()
    c, s = pair.take()
    assert [e.request_id for e in events_of(s, SubscribeNamespaceRequested)] == [a]
    (rej,) = events_of(c, RequestRejected)
    assert rej.request_id == b and rej.error is RequestErrorCode.PREFIX_OVERLAP


def test_draft16_subscribe_namespace_rejected_closes_its_stream() -> None:
    pair = session_pair(DRAFT_16)
    pair.take()
    rid = pair.client.subscribe_namespace((b"x",))
    pair.deliver_until_idle()
    pair.server.reject_request(rid, RequestErrorCode.DOES_NOT_EXIST)
    pair.deliver_until_idle()
    c, _ = pair.take()
    assert events_of(c, RequestRejected)[0].request_id == rid
    stream = next(sid for sid in pair.s.transport.sent_bytes if sid != 0)
    assert stream in pair.s.transport.finished
    assert not pair.client.closed


def test_draft16_namespace_messages_on_the_control_stream_are_violations() -> None:
    peer = RawPeer(DRAFT_16)
    peer.setup()
    peer.send(m.SubscribeNamespace(0, (b"a",)))
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION


def test_draft16_namespace_done_before_namespace_is_a_violation() -> None:
    peer = RawPeer(DRAFT_16, is_client=True)
    peer.setup()
    rid = peer.session.subscribe_namespace((b"a",))
    stream = next(sid for sid in peer.transport.sent_bytes if sid != 0)
    peer.send(m.RequestOk(rid), stream_id=stream)
    peer.send(m.NamespaceDone((b"b",)), stream_id=stream)
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION


def test_draft16_bidi_stream_must_start_with_subscribe_namespace() -> None:
    peer = RawPeer(DRAFT_16)
    peer.setup()
    peer.send(m.Unsubscribe(0), stream_id=4)
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION


def test_draft14_second_bidi_stream_is_a_violation() -> None:
    peer = RawPeer(DRAFT_14)
    peer.setup()
    peer.send(m.SubscribeNamespace(0, (b"a",)), stream_id=4)
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION


def test_draft16_subscriber_cancels_with_fin() -> None:
    peer = RawPeer(DRAFT_16)
    peer.setup()
    peer.send(m.SubscribeNamespace(0, (b"a",)), stream_id=4)
    (req,) = events_of(peer.take(), SubscribeNamespaceRequested)
    peer.session.accept_subscribe_namespace(req.request_id)
    assert isinstance(peer.received(4)[0], m.RequestOk)
    peer.feed(4, b"", fin=True)
    assert peer.take() == [SubscribeNamespaceEnded(0, (b"a",), by_peer=True)]
    assert 4 in peer.transport.finished


def test_draft16_publisher_resets_or_fins_our_namespace_stream() -> None:
    peer = RawPeer(DRAFT_16, is_client=True)
    peer.setup()
    rid = peer.session.subscribe_namespace((b"a",))
    stream = next(sid for sid in peer.transport.sent_bytes if sid != 0)
    # A reset before any answer ends the request without closing the session ...
    assert peer.session.stream_reset(stream, 0, 0.0) == [
        SubscribeNamespaceEnded(rid, (b"a",), by_peer=True)
    ]
    # ... but a FIN before the answer breaks "REQUEST_OK or REQUEST_ERROR first".
    rid2 = peer.session.subscribe_namespace((b"b",))
    stream2 = max(peer.transport.sent_bytes)
    peer.feed(stream2, b"", fin=True)
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION
    assert rid2 == rid + 2


def test_draft16_rejected_namespace_stream_fin_arriving_later_is_fine() -> None:
    peer = RawPeer(DRAFT_16, is_client=True)
    peer.setup()
    rid = peer.session.subscribe_namespace((b"a",))
    stream = next(sid for sid in peer.transport.sent_bytes if sid != 0)
    peer.send(m.RequestError(rid, RequestErrorCode.DOES_NOT_EXIST), stream_id=stream)
    assert events_of(peer.take(), RequestRejected)[0].request_id == rid
    assert stream in peer.transport.finished  # we closed our half too
    assert peer.feed(stream, b"", fin=True) == []  # the publisher's FIN, separately
    assert not peer.session.closed
