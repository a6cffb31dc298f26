"""Session setup, version negotiation, setup parameters, GOAWAY and the close path."""

from __future__ import annotations

import pytest

from moqt import messages as m
from moqt._buffer import Buffer
from moqt.errors import LocalError, SessionCloseCode
from moqt.events import GoawayReceived, SessionClosed, SetupCompleted
from moqt.session import Session
from moqt.types import AuthToken
from moqt.version import DRAFT_14, DRAFT_16
from tests.moqt.harness import MemoryTransport, RawPeer, closed_with, events_of, session_pair

VERSIONS = [pytest.param(DRAFT_16, id="d16"), pytest.param(DRAFT_14, id="d14")]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("chunk", [None, 1])
def test_setup_completes_on_both_sides(version: int, chunk: int | None) -> None:
    pair = session_pair(
        version,
        chunk_size=chunk,
        client_kwargs={"path": "/live?x=1", "authority": "relay.example:443", "auth_token": b"tok"},
    )
    (c_setup,) = events_of(pair.client_events, SetupCompleted)
    (s_setup,) = events_of(pair.server_events, SetupCompleted)
    assert c_setup.version == s_setup.version == version
    assert s_setup.path == "/live?x=1"
    assert s_setup.authority == "relay.example:443"
    assert s_setup.auth_tokens == (AuthToken(0, b"tok"),)
    assert s_setup.peer_implementation == "clutchcall"
    assert c_setup.peer_max_request_id == s_setup.peer_max_request_id == 100
    assert pair.client.setup_complete and pair.server.setup_complete


def test_draft16_client_setup_has_no_version_list() -> None:
    pair = session_pair(DRAFT_16, connect=False)
    pair.client.initiate(0.0)
    (op,) = pair.c.transport.outbox
    msg = m.decode_control(Buffer(op.data), DRAFT_16)
    assert isinstance(msg, m.ClientSetup) and msg.versions == ()


def test_draft14_negotiation_selects_draft14_on_a_moq00_server() -> None:
    # ALPN moq-00: the server does not know the version until CLIENT_SETUP.
    pair = session_pair(DRAFT_14, server_version=None)
    assert pair.server.version == DRAFT_14
    (setup,) = events_of(pair.client_events, SetupCompleted)
    assert setup.version == DRAFT_14
    sent = pair.s.transport.sent_bytes[0]
    reply = m.decode_control(Buffer(bytes(sent)), DRAFT_14)
    assert isinstance(reply, m.ServerSetup) and reply.selected_version == DRAFT_14


def test_moq00_server_refuses_unknown_versions() -> None:
    peer = RawPeer(None)
    peer.setup(versions=(0xFF00000D, 0xFF00000F))
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.VERSION_NEGOTIATION_FAILED
    assert peer.transport.closed is not None
    assert peer.transport.closed[0] == SessionCloseCode.VERSION_NEGOTIATION_FAILED


def test_client_refuses_a_version_it_did_not_offer() -> None:
    peer = RawPeer(DRAFT_14, is_client=True)
    peer.session.initiate(0.0)
    peer.send(m.ServerSetup(0xFF00000D, m.SetupParameters()))
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.VERSION_NEGOTIATION_FAILED


@pytest.mark.parametrize("version", VERSIONS)
def test_server_sending_path_or_authority_is_refused(version: int) -> None:
    for key, code in ((1, SessionCloseCode.INVALID_PATH), (5, SessionCloseCode.INVALID_AUTHORITY)):
        peer = RawPeer(version, is_client=True)
        peer.session.initiate(0.0)
        selected = DRAFT_14 if version == DRAFT_14 else None
        peer.send(m.ServerSetup(selected, m.SetupParameters(((key, b"/x"),))))
        close = closed_with(peer.take())
        assert close is not None and close.code == code


def test_path_over_webtransport_is_refused() -> None:
    peer = RawPeer(DRAFT_16, webtransport=True)
    peer.send(m.ClientSetup((), m.SetupParameters.build(path="/x", max_request_id=10)))
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.INVALID_PATH


def test_setup_parameter_defaults_and_unknown_setup_parameters() -> None:
    # No MAX_REQUEST_ID means 0: the server may not send requests; unknown (even
    # repeated) setup parameters are ignored.
    peer = RawPeer(DRAFT_16)
    peer.send(m.ClientSetup((), m.SetupParameters(((0x40, 1), (0x40, 2), (0x41, b"x")))))
    (setup,) = events_of(peer.take(), SetupCompleted)
    assert setup.peer_max_request_id == 0
    with pytest.raises(LocalError):
        peer.session.subscribe((b"a",), b"b")


@pytest.mark.parametrize("version", VERSIONS)
def test_first_message_must_be_setup(version: int) -> None:
    peer = RawPeer(version)
    peer.send(m.ClientSetup((DRAFT_14,) if version == DRAFT_14 else (), m.SetupParameters()))
    peer.take()
    peer.send(m.ClientSetup((DRAFT_14,) if version == DRAFT_14 else (), m.SetupParameters()))
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION


def test_control_message_before_setup_is_a_violation() -> None:
    peer = RawPeer(DRAFT_16)
    peer.send(m.Goaway(""))
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION


@pytest.mark.parametrize("version", VERSIONS)
def test_closing_the_control_stream_is_a_violation(version: int) -> None:
    peer = RawPeer(version)
    peer.setup()
    peer.take()
    peer.feed(0, b"", fin=True)
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION
    assert "control stream" in close.reason


def test_resetting_the_control_stream_is_a_violation() -> None:
    peer = RawPeer(DRAFT_16)
    peer.setup()
    events = peer.session.stream_reset(0, 0, 0.0)
    close = closed_with(events)
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION


@pytest.mark.parametrize("version", VERSIONS)
def test_goaway_from_server(version: int) -> None:
    pair = session_pair(version)
    pair.take()
    pair.server.goaway("moqt://other.example/live")
    pair.deliver_until_idle()
    c, _ = pair.take()
    assert c == [GoawayReceived("moqt://other.example/live")]
    assert pair.client.peer_goaway
    # Draft-16 "GOAWAY": no new requests after receiving it.
    with pytest.raises(LocalError):
        pair.client.subscribe((b"a",), b"b")
    with pytest.raises(LocalError):
        pair.server.goaway()


def test_goaway_rules() -> None:
    pair = session_pair(DRAFT_16)
    with pytest.raises(LocalError):
        pair.client.goaway("moqt://x")  # only a server names a URI
    # A client GOAWAY with a URI is a violation at the server ...
    peer = RawPeer(DRAFT_16)
    peer.setup()
    peer.take()
    peer.send(m.Goaway("moqt://x"))
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION
    # ... and so is a second GOAWAY.
    peer = RawPeer(DRAFT_16, is_client=True)
    peer.setup()
    peer.send(m.Goaway(""))
    peer.send(m.Goaway(""))
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.PROTOCOL_VIOLATION


def test_goaway_timeout_closes_the_session() -> None:
    pair = session_pair(DRAFT_16)
    pair.take()
    pair.server.goaway(timeout=5.0)
    pair.deliver_until_idle()
    assert pair.server.get_timer() == pytest.approx(5.0)
    pair.advance(4.0)
    assert not pair.server.closed
    pair.advance(1.5)
    c, s = pair.take()
    close = closed_with(s)
    assert close is not None and close.code == SessionCloseCode.GOAWAY_TIMEOUT
    peer_close = closed_with(c)
    assert peer_close is not None and peer_close.by_peer
    assert peer_close.code == SessionCloseCode.GOAWAY_TIMEOUT


@pytest.mark.parametrize("version", VERSIONS)
def test_close_is_one_path_and_inputs_are_ignored_after(version: int) -> None:
    pair = session_pair(version)
    pair.take()
    events = pair.client.close(SessionCloseCode.NO_ERROR, "bye")
    assert events == [SessionClosed(0, "bye", by_peer=False)]
    assert pair.client.close() == []
    pair.deliver_until_idle()
    _, s = pair.take()
    assert s == [SessionClosed(0, "bye", by_peer=True)]
    # Everything after the close is ignored; requests are misuse.
    assert pair.server.stream_data_received(0, b"\x00\x01", False, 1.0) == []
    assert pair.server.handle_timer(2.0) == []
    assert pair.server.get_timer() is None
    with pytest.raises(LocalError):
        pair.server.subscribe((b"a",), b"b")


def test_client_needs_a_version_and_server_rejects_client_parameters() -> None:
    with pytest.raises(LocalError):
        Session(MemoryTransport(True), is_client=True, version=None)
    with pytest.raises(LocalError):
        Session(MemoryTransport(False), is_client=False, version=DRAFT_16, path="/x")
    with pytest.raises(LocalError):
        Session(MemoryTransport(True), is_client=True, version=0x1234)


def test_data_before_setup_is_held_until_setup() -> None:
    # A uni stream may arrive before the control stream (draft-16 "Session
    # initialization"); it is parsed once setup completes.
    pair = session_pair(DRAFT_16, connect=False)
    pair.c.events += pair.client.initiate(0.0)
    # Deliver the server's data first: nothing is queued there yet, so just check the
    # server holds a stray early uni stream without failing.
    events = pair.server.stream_data_received(2, b"\x10", False, 0.0)
    assert events == []
    pair.deliver_until_idle()
    assert not pair.server.closed
    assert events_of(pair.server_events, SetupCompleted)


def test_initiate_twice_is_misuse() -> None:
    pair = session_pair(DRAFT_16)
    with pytest.raises(LocalError):
        pair.client.initiate(1.0)
    assert not pair.client.closed


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("chunk", [None, 1])
def test_the_control_stream_has_the_highest_transport_priority(
    version: int, chunk: int | None
) -> None:
    # On a stack with strict stream priorities (picoquic) a control stream left at the
    # stack's default went out behind every media stream of a higher publisher priority:
    # a congested viewer never got its SUBSCRIBE_OK (tests/pop/test_congested_control.py).
    pair = session_pair(version, chunk_size=chunk)
    for peer in (pair.c, pair.s):
        control = peer.session._control_stream
        assert control is not None
        assert peer.transport.priorities[control] == 0
