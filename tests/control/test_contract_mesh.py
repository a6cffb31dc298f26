"""The control plane's bus output, read by the mesh's own verifier and admission code.

This pins BUS_CONTRACT.md from both ends: tokens minted here verify at a POP
(mesh.auth over the ``clutchcall:jwks`` record), revocations written here are
honoured by mesh.revocation, and stream-key records admit at origin.admission.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from mesh.auth import AuthError, AuthFailure, TokenVerifier
from mesh.bus import Bus
from mesh.jwks import JwksProvider
from mesh.revocation import RevocationSet
from origin.admission import BusStreamKeyAuthorizer, Refusal
from origin.status import InputStatus, StatusReporter
from tests.control.conftest import Api


@pytest.fixture
def db_url(sqlite_url: str) -> str:  # one engine is enough here: this is about the bus
    return sqlite_url


async def _verifier(bus: Bus) -> tuple[TokenVerifier, RevocationSet]:
    revocations = RevocationSet()
    await revocations.load(bus)
    return TokenVerifier(JwksProvider("bus", bus=bus), revocations=revocations), revocations


async def test_minted_tokens_verify_at_the_edge_and_revocations_apply(
    api: Api, redis_bus: Bus
) -> None:
    org = api.org_id
    li, _sk = await api.service.create_input(org, "cam", "fmp4")
    first = await api.service.mint_playback(org, li.id, 600)

    verifier, _ = await _verifier(redis_bus)
    claims = await verifier.verify(first.token, li.namespace)
    assert (claims.sub, claims.jti) == (li.external_input_id, first.jti)
    other, _ = await api.service.create_input(org, "other", "fmp4")
    with pytest.raises(AuthError) as wrong:
        await verifier.verify(first.token, other.namespace)
    assert wrong.value.reason is AuthFailure.WRONG_TRACK

    # Signing key rotation: old tokens keep verifying during the overlap.
    await api.service.rotate_signing_key()
    second = await api.service.mint_playback(org, li.id, 600)
    assert second.kid != first.kid
    verifier, _ = await _verifier(redis_bus)
    await verifier.verify(first.token, li.namespace)
    await verifier.verify(second.token, li.namespace)

    # One token by jti, as a POP starting later sees it (records on the bus).
    await api.service.revoke_token(org, first.jti)
    verifier, _ = await _verifier(redis_bus)
    with pytest.raises(AuthError) as revoked:
        await verifier.verify(first.token, li.namespace)
    assert revoked.value.reason is AuthFailure.REVOKED
    await verifier.verify(second.token, li.namespace)

    # Every token of the input so far; one minted afterwards still works.
    await api.service.revoke_input_playback(org, li.id)
    third = await api.service.mint_playback(org, li.id, 600)
    verifier, _ = await _verifier(redis_bus)
    with pytest.raises(AuthError):
        await verifier.verify(second.token, li.namespace)
    await verifier.verify(third.token, li.namespace)


async def test_stream_keys_admit_and_rotation_refuses_the_old_key(api: Api, redis_bus: Bus) -> None:
    li, key = await api.service.create_input(api.org_id, "cam", "fmp4")
    # cache_ttl=0: every check reads the record this control plane wrote.
    authorizer = BusStreamKeyAuthorizer(redis_bus, cache_ttl=0)
    granted = await authorizer.authorize(li.external_input_id, key)
    assert granted.ok
    assert (granted.org_id, granted.namespace, granted.input_id) == (
        api.org_id,
        li.namespace,
        li.id,
    )
    _li, new_key = await api.service.rotate_stream_key(api.org_id, li.id)
    old = await authorizer.authorize(li.external_input_id, key)
    assert not old.ok and old.refusal is Refusal.WRONG_KEY
    assert (await authorizer.authorize(li.external_input_id, new_key)).ok
    await api.service.delete_input(api.org_id, li.id)
    gone = await authorizer.authorize(li.external_input_id, new_key)
    assert not gone.ok and gone.refusal is Refusal.UNKNOWN_INPUT


async def test_a_dead_origins_input_falls_back_to_idle(api: Api, redis_bus: Bus) -> None:
    """Route and live status both expire without the origin's heartbeat; so does "live" here."""
    org = api.org_id
    li, _sk = await api.service.create_input(org, "cam", "fmp4")
    listener = asyncio.create_task(api.service.run_status_listener())
    try:
        reporter = StatusReporter(redis_bus, node_id="o1", live_ttl=0.8)
        route = {"origin": "o1", "region": "r1", "quic": "127.0.0.1:1", "at": time.time()}
        await redis_bus.set(f"clutchcall:route:{li.namespace}", route, ttl=0.8)
        await asyncio.sleep(0.3)  # the listener subscribed
        await reporter.report(li.external_input_id, InputStatus.LIVE)
        assert (await api.service.get_input(org, li.id)).status == "live"
        stored = api.service.repo.get_live_input(org, li.id)
        assert stored is not None and stored.status == "live"

        # The origin is SIGKILLed: nobody refreshes its records, nobody reports idle.
        await asyncio.sleep(1.2)
        assert await redis_bus.get(f"clutchcall:route:{li.namespace}") is None
        assert await redis_bus.get(f"clutchcall:input-status:{li.external_input_id}") is None
        assert (await api.service.get_input(org, li.id)).status == "idle"
        stored = api.service.repo.get_live_input(org, li.id)
        assert stored is not None and stored.status == "idle"
        # A resync (after a bus outage) finds no stale "live" record to re-apply.
        await api.service._read_status_records()
        stored = api.service.repo.get_live_input(org, li.id)
        assert stored is not None and stored.status == "idle"
        listed, _ = await api.service.list_inputs(org, limit=10, cursor=None)
        assert [x.status for x in listed if x.id == li.id] == ["idle"]
    finally:
        listener.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listener
