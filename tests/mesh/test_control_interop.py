"""The control plane's signer and the POP's verifier agree (tokens, JWKS, revocations)."""

from __future__ import annotations

import time

import pytest

from control.signing import KeySealer, new_signing_key, public_jwks, sign_playback_token
from mesh.auth import AuthError, AuthFailure, TokenVerifier
from mesh.bus import MemoryBus
from mesh.jwks import JWKS_KEY, JwksProvider
from mesh.revocation import Revocation, RevocationSet


async def test_tokens_signed_by_the_control_plane_verify_at_the_pop() -> None:
    sealer = KeySealer(None)
    key = new_signing_key(sealer, time.time())
    bus = MemoryBus()
    await bus.set(JWKS_KEY, public_jwks([key]))
    revocations = RevocationSet()
    verifier = TokenVerifier(JwksProvider("bus", bus=bus), revocations=revocations)
    signed = sign_playback_token(
        key,
        sealer,
        sub="lv_abc",
        org="org_1",
        audience="clutchcall-playback",
        namespace="stream/org_1/lv_abc",
        jti="jt_x",
        now=time.time(),
        ttl_seconds=300,
    )
    claims = await verifier.verify(signed.token, "stream/org_1/lv_abc")
    assert (claims.sub, claims.jti, claims.kid) == ("lv_abc", "jt_x", key.kid)
    # "Revoke all tokens of the input" right after minting catches it (iat has ms precision).
    revocations.apply(Revocation("sub", "lv_abc", time.time() + 60, before=time.time()))
    with pytest.raises(AuthError) as info:
        await verifier.verify(signed.token, "lv_abc")
    assert info.value.reason is AuthFailure.REVOKED
