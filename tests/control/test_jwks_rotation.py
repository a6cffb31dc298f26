"""A signing-key rotation reaches the edge at once (the control plane announces it).

A POP refreshes its JWKS on an unknown kid at most once per ``jwks_refresh_interval``
(10 s), so a flood of random kids cannot turn into a flood of fetches. Without an
announcement, a rotation right after such a refresh left new tokens refused for up
to that long.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from mesh.auth import AuthError, AuthFailure, TokenVerifier
from mesh.bus import Bus
from mesh.jwks import JWKS_CHANNEL, JwksProvider
from tests.control.conftest import Api


@pytest.fixture
def db_url(sqlite_url: str) -> str:  # one engine is enough: this is about the bus
    return sqlite_url


async def test_new_tokens_verify_right_after_a_rotation(api: Api, redis_bus: Bus) -> None:
    org = api.org_id
    li, _sk = await api.service.create_input(org, "cam", "fmp4")
    await api.service.jwks()  # the first key, on the bus
    provider = JwksProvider("bus", bus=redis_bus, min_refresh_interval=10.0)
    verifier = TokenVerifier(provider)
    background = asyncio.create_task(provider.run())
    try:
        await verifier.verify((await api.service.mint_playback(org, li.id, 600)).token)
        # Someone presents an unknown kid: the refresh it causes uses up the interval.
        assert await provider.key("kid-nobody-has") is None
        for _ in range(250):  # until run() has subscribed to the announcements
            if (await redis_bus.client.pubsub_numsub(JWKS_CHANNEL))[0][1]:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.02)
        await api.service.rotate_signing_key()
        fresh = (await api.service.mint_playback(org, li.id, 600)).token
        async with asyncio.timeout(2.0):
            while True:
                try:
                    await verifier.verify(fresh, li.namespace)
                    break
                except AuthError as exc:
                    assert exc.reason is AuthFailure.UNKNOWN_KID
                    await asyncio.sleep(0.05)
    finally:
        background.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await background
