"""Viewer admission over real QUIC / WebTransport sessions: every refusal, every token place."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from mesh.auth import AUTH_FAILED
from mesh.bus import MemoryBus
from mesh.revocation import Revocation, publish_revocation
from moqt.aio import connect
from moqt.errors import RequestErrorCode, SessionCloseCode
from moqt.events import RequestRejected
from moqt.version import DRAFT_14
from pop import PopNode
from tests.pop.conftest import MakePop
from tests.pop.lab import (
    Origin,
    SigningKey,
    Tokens,
    Viewer,
    closed_session,
    namespace_name,
    namespace_of,
)

NS = namespace_of("lv_a")


@pytest.fixture
async def origin(bus: MemoryBus, certs: tuple[Path, Path]) -> AsyncIterator[Origin]:
    origin = Origin(bus, "origin1", "eu", certs[0], certs[1], (NS,), group_ms=200)
    async with origin.running():
        yield origin


@pytest.fixture
async def pop(make_pop: MakePop, origin: Origin) -> PopNode:
    node = await make_pop(node_kwargs={"auth_timeout": 1.0})
    assert node.topology is not None
    for _ in range(100):
        if node.topology.route(namespace_name("lv_a")) is not None:
            break
        await asyncio.sleep(0.05)
    return node


def url(pop: PopNode, path: str = "") -> str:
    return f"moqt://127.0.0.1:{pop.quic_address[1]}{path}"


def failures(pop: PopNode, reason: str) -> float:
    value = pop.metrics.registry.get_sample_value(
        "clutchcall_auth_failures_total", {"reason": reason}
    )
    return value or 0.0


def bad_token(tokens: Tokens, case: str) -> str:
    now = time.time()
    if case == "malformed":
        return "not-a.jwt.at-all"
    if case == "bad_signature":
        return SigningKey("k1").sign(tokens.claims())
    if case == "expired":
        return tokens.mint(exp=int(now) - 30, iat=now - 60, nbf=int(now) - 60)
    if case == "not_yet_valid":
        return tokens.mint(nbf=int(now) + 120)
    if case == "wrong_audience":
        return tokens.mint(aud="someone-else")
    if case == "wrong_track":
        return tokens.mint("lv_other")
    if case == "algorithm_not_allowed_none":
        return jwt.encode(tokens.claims(), "", algorithm="none", headers={"kid": "k1"})
    if case == "algorithm_not_allowed_hs256":
        public = tokens.key.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = {"alg": "HS256", "kid": "k1", "typ": "JWT"}
        return _hs256(tokens.claims(), public, header)
    if case == "unknown_kid":
        return SigningKey("k-unknown").sign(tokens.claims())
    if case == "missing_claim":
        return tokens.mint(jti=None)
    raise AssertionError(case)


def _hs256(claims: dict[str, Any], secret: bytes, header: dict[str, Any]) -> str:
    # PyJWT refuses PEM keys as HMAC secrets, which is exactly the attack: sign by hand.
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


REFUSALS = [
    ("malformed", "malformed"),
    ("bad_signature", "bad_signature"),
    ("expired", "expired"),
    ("not_yet_valid", "not_yet_valid"),
    ("wrong_audience", "wrong_audience"),
    ("wrong_track", "wrong_track"),
    ("algorithm_not_allowed_none", "algorithm_not_allowed"),
    ("algorithm_not_allowed_hs256", "algorithm_not_allowed"),
    ("unknown_kid", "unknown_kid"),
    ("missing_claim", "missing_claim"),
]


def assert_auth_failed(closed: object) -> None:
    assert closed is not None, "the POP did not close the session"
    assert closed.code == SessionCloseCode.UNAUTHORIZED, closed  # type: ignore[attr-defined]
    assert closed.reason == AUTH_FAILED, closed  # type: ignore[attr-defined]
    assert closed.by_peer  # type: ignore[attr-defined]


@pytest.mark.parametrize(("case", "reason"), REFUSALS)
async def test_refused_token_in_subscribe(
    pop: PopNode, tokens: Tokens, case: str, reason: str
) -> None:
    before = failures(pop, reason)
    closed = await closed_session(url(pop), subscribe_token=bad_token(tokens, case))
    assert_auth_failed(closed)
    assert failures(pop, reason) == before + 1


@pytest.mark.parametrize("case", ["expired", "wrong_audience", "bad_signature", "malformed"])
async def test_refused_token_in_setup(pop: PopNode, tokens: Tokens, case: str) -> None:
    assert_auth_failed(await closed_session(url(pop), setup_token=bad_token(tokens, case)))


@pytest.mark.parametrize("transport", ["moqt", "webtransport"])
async def test_refused_token_in_url(pop: PopNode, tokens: Tokens, transport: str) -> None:
    token = bad_token(tokens, "expired")
    viewer = Viewer(url(pop, f"/{namespace_name('lv_a')}?token={token}"), NS)
    await asyncio.wait_for(viewer.watch(transport=transport), 5)
    assert_auth_failed(viewer.closed)


async def test_missing_token_is_refused_at_first_request(pop: PopNode) -> None:
    before = failures(pop, "missing")
    assert_auth_failed(await closed_session(url(pop)))
    assert failures(pop, "missing") == before + 1


async def test_session_without_token_is_closed_after_auth_timeout(pop: PopNode) -> None:
    async with connect(url(pop), verify=False) as conn:
        started = time.monotonic()
        closed = await asyncio.wait_for(conn.wait_closed(), 5)
        assert_auth_failed(closed)
        assert 0.8 <= time.monotonic() - started <= 3.0


async def test_revoked_token_is_refused(pop: PopNode, bus: MemoryBus, tokens: Tokens) -> None:
    claims = tokens.claims()
    await publish_revocation(bus, Revocation("jti", claims["jti"], claims["exp"]))
    await asyncio.sleep(0.05)
    before = failures(pop, "revoked")
    assert_auth_failed(await closed_session(url(pop), subscribe_token=tokens.key.sign(claims)))
    assert failures(pop, "revoked") == before + 1


@pytest.mark.parametrize("place", ["subscribe", "setup", "path-moqt", "path-webtransport"])
async def test_valid_token_is_admitted_everywhere(pop: PopNode, tokens: Tokens, place: str) -> None:
    token = tokens.mint()
    path = f"/{namespace_name('lv_a')}?token={token}" if place.startswith("path") else ""
    viewer = Viewer(url(pop, path), NS)
    kwargs: dict[str, Any] = {}
    if place == "subscribe":
        kwargs["subscribe_token"] = token
    elif place == "setup":
        kwargs["setup_token"] = token
    elif place == "path-webtransport":
        kwargs["transport"] = "webtransport"
    task = asyncio.create_task(viewer.watch(**kwargs))
    try:
        await asyncio.wait_for(viewer.got_object.wait(), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert viewer.closed is None and viewer.rejected is None


async def test_token_grants_only_its_own_namespace(pop: PopNode, tokens: Tokens) -> None:
    token = tokens.mint("lv_a")
    closed = await closed_session(url(pop), setup_token=token, namespace=namespace_of("lv_b"))
    assert_auth_failed(closed)


async def test_expiring_token_closes_the_session_at_exp(pop: PopNode, tokens: Tokens) -> None:
    exp = int(time.time()) + 2
    viewer = Viewer(url(pop), NS)
    task = asyncio.create_task(viewer.watch(subscribe_token=tokens.mint(exp=exp)))
    await asyncio.wait_for(viewer.got_object.wait(), 10)
    await asyncio.wait_for(task, 6)
    assert_auth_failed(viewer.closed)
    closed_at = viewer.objects[-1].at
    assert closed_at <= exp + 0.5
    assert time.time() >= exp - 0.05
    assert failures(pop, "expired") >= 1


async def test_revocation_closes_open_sessions(
    pop: PopNode, bus: MemoryBus, tokens: Tokens
) -> None:
    claims = tokens.claims()
    victim, bystander = Viewer(url(pop), NS), Viewer(url(pop), NS)
    tasks = [
        asyncio.create_task(victim.watch(subscribe_token=tokens.key.sign(claims))),
        asyncio.create_task(bystander.watch(subscribe_token=tokens.mint())),
    ]
    try:
        await asyncio.wait_for(victim.got_object.wait(), 10)
        await asyncio.wait_for(bystander.got_object.wait(), 10)
        sent = time.monotonic()
        await publish_revocation(bus, Revocation("jti", claims["jti"], claims["exp"]))
        await asyncio.wait_for(tasks[0], 2)
        assert time.monotonic() - sent < 1.0  # precise figures: tests/e2e/test_pop_revocation.py
        assert_auth_failed(victim.closed)
        assert bystander.closed is None
        assert pop.metrics.registry.get_sample_value("clutchcall_revoked_sessions_total") == 1
        before = len(bystander.objects)
        await asyncio.sleep(0.5)
        assert len(bystander.objects) > before
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_sub_revocation_spares_newer_tokens(
    pop: PopNode, bus: MemoryBus, tokens: Tokens
) -> None:
    old = Viewer(url(pop), NS)
    task = asyncio.create_task(old.watch(subscribe_token=tokens.mint()))
    await asyncio.wait_for(old.got_object.wait(), 10)
    now = time.time()
    await publish_revocation(bus, Revocation("sub", "lv_a", now + 300, before=now))
    await asyncio.wait_for(task, 2)
    assert_auth_failed(old.closed)
    await asyncio.sleep(0.01)
    fresh = Viewer(url(pop), NS)
    task = asyncio.create_task(fresh.watch(subscribe_token=tokens.mint()))
    try:
        await asyncio.wait_for(fresh.got_object.wait(), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_viewers_cannot_publish(pop: PopNode, tokens: Tokens) -> None:
    opts_token = tokens.mint()
    from moqt.aio import SessionOptions

    async with connect(
        url(pop), verify=False, options=SessionOptions(auth_token=opts_token.encode())
    ) as conn:
        rid = conn.session.publish(NS, b"video")
        answer = await asyncio.wait_for(conn.wait_response(rid), 5)
        # A POP carries publishers to an origin (issue 12), but only with a stream key.
        assert isinstance(answer, RequestRejected)
        assert answer.code == RequestErrorCode.UNAUTHORIZED
        assert "missing stream key" in answer.reason


@pytest.mark.parametrize("valid", [True, False])
async def test_draft14_viewers(pop: PopNode, tokens: Tokens, valid: bool) -> None:
    token = tokens.mint() if valid else bad_token(tokens, "wrong_audience")
    viewer = Viewer(url(pop), NS)
    task = asyncio.create_task(viewer.watch(subscribe_token=token, versions=(DRAFT_14,)))
    try:
        if valid:
            await asyncio.wait_for(viewer.got_object.wait(), 10)
            assert viewer.closed is None
        else:
            await asyncio.wait_for(task, 5)
            assert_auth_failed(viewer.closed)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
