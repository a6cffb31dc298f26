"""AUTHORIZATION TOKEN aliases as the receiver resolves them (draft-16 "AUTHORIZATION
TOKEN Parameter" and "MAX_AUTH_TOKEN_CACHE_SIZE")."""

from __future__ import annotations

import pytest

from moqt import messages as m
from moqt.errors import SessionCloseCode
from moqt.events import SetupCompleted, SubscribeRequested
from moqt.types import AuthToken
from moqt.version import DRAFT_14, DRAFT_16
from tests.moqt.harness import RawPeer, closed_with, events_of

VERSIONS = [pytest.param(DRAFT_16, id="d16"), pytest.param(DRAFT_14, id="d14")]
W = m.AuthToken


def _sub(request_id: int, *tokens: W) -> m.Subscribe:
    params = m.MessageParameters.build(auth_tokens=tokens)
    return m.Subscribe(request_id, (b"a",), b"t%d" % request_id, parameters=params)


def _server(version: int, cache: int = 1000) -> RawPeer:
    peer = RawPeer(version, max_auth_token_cache_size=cache)
    peer.setup()
    peer.take()
    return peer


@pytest.mark.parametrize("version", VERSIONS)
def test_register_use_alias_delete(version: int) -> None:
    peer = _server(version)
    peer.send(_sub(0, W.register(7, b"secret", token_type=1)))
    peer.send(_sub(2, W.use_alias(7)))
    peer.send(_sub(4, W.delete(7), W.use_value(b"plain")))
    got = [e.auth_tokens for e in events_of(peer.take(), SubscribeRequested)]
    assert got == [
        (AuthToken(1, b"secret"),),
        (AuthToken(1, b"secret"),),
        (AuthToken(0, b"plain"),),
    ]
    peer.send(_sub(6, W.use_alias(7)))  # deleted
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.UNKNOWN_AUTH_TOKEN_ALIAS


@pytest.mark.parametrize("version", VERSIONS)
def test_duplicate_alias_and_cache_overflow(version: int) -> None:
    peer = _server(version)
    peer.send(_sub(0, W.register(1, b"x")))
    peer.send(_sub(2, W.register(1, b"y")))
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.DUPLICATE_AUTH_TOKEN_ALIAS

    peer = _server(version, cache=40)  # 16 bytes overhead + value per token
    peer.send(_sub(0, W.register(1, b"x" * 20)))
    assert not peer.session.closed
    peer.send(_sub(2, W.register(2, b"y" * 10)))
    close = closed_with(peer.take())
    assert close is not None and close.code == SessionCloseCode.AUTH_TOKEN_CACHE_OVERFLOW


def test_client_setup_registration_that_does_not_fit_is_used_as_a_value() -> None:
    peer = RawPeer(DRAFT_16, max_auth_token_cache_size=0)
    params = m.SetupParameters.build(max_request_id=10, auth_tokens=(W.register(3, b"tok"),))
    peer.send(m.ClientSetup((), params))
    (setup,) = events_of(peer.take(), SetupCompleted)
    assert setup.auth_tokens == (AuthToken(0, b"tok"),)
    assert not peer.session.closed
