"""Signing keys at rest, the auth-failure limiter, and several replicas on one database."""

from __future__ import annotations

import json

import jwt
import pytest

from control.app import create_app
from control.errors import Problem
from control.ratelimit import FailureLimiter
from control.service import ControlService
from control.settings import ControlSettings
from control.signing import (
    KeySealer,
    SealError,
    jwk_thumbprint,
    new_signing_key,
    sign_playback_token,
)
from control.store import open_repository
from mesh.bus import MemoryBus
from tests.control.server import clutchcall


def test_sealed_keys_open_only_with_their_secret() -> None:
    key = new_signing_key(KeySealer("s3cret"), now=1.0)
    assert key.private_key.startswith("aesgcm:v1:") and "PRIVATE KEY" not in key.private_key
    assert b"PRIVATE KEY" in KeySealer("s3cret").open(key.private_key)
    with pytest.raises(SealError, match="cannot be opened"):
        KeySealer("other").open(key.private_key)
    with pytest.raises(SealError, match="no key secret"):
        KeySealer(None).open(key.private_key)
    plain = new_signing_key(KeySealer(None), now=1.0)
    assert plain.private_key.startswith("pem:")
    jwk = json.loads(plain.public_jwk)
    assert jwk["kid"] == plain.kid == jwk_thumbprint(jwk) and "d" not in jwk


def test_token_signed_by_a_sealed_key_verifies() -> None:
    sealer = KeySealer("k")
    key = new_signing_key(sealer, now=1000.0)
    signed = sign_playback_token(
        key,
        sealer,
        sub="lv_a",
        org="org_a",
        audience="aud",
        namespace="stream/org_a/lv_a",
        jti="jt_1",
        now=1000.25,
        ttl_seconds=60,
    )
    public = jwt.PyJWK(json.loads(key.public_jwk))
    claims = jwt.decode(
        signed.token,
        public.key,
        algorithms=["ES256"],
        audience="aud",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims == {
        "sub": "lv_a",
        "org": "org_a",
        "aud": "aud",
        "ns": "stream/org_a/lv_a",
        "iat": 1000.25,
        "nbf": 1000,
        "exp": 1060,
        "jti": "jt_1",
    }
    # alg confusion: the public key as an HMAC secret must not verify anything.
    with pytest.raises(jwt.InvalidTokenError):
        jwt.decode(signed.token, key.public_jwk, algorithms=["HS256"], audience="aud")


async def test_wrong_key_secret_is_refused_clearly(db_url: str) -> None:
    repo = open_repository(db_url)
    try:
        svc = ControlService(repo, MemoryBus(), ControlSettings(db=db_url, key_secret="one"))
        await svc.rotate_signing_key()
        svc.check_signing_keys()
        org, _k, _s = await svc.create_org("a")
        li, _sk = await svc.create_input(org.id, "x", "fmp4")
        wrong = ControlService(repo, MemoryBus(), ControlSettings(db=db_url, key_secret="two"))
        with pytest.raises(SealError):
            wrong.check_signing_keys()
        with pytest.raises(Problem) as info:
            await wrong.mint_playback(org.id, li.id, 600)
        assert info.value.status == 503
    finally:
        repo.close()


@pytest.mark.e2e
def test_control_will_not_start_with_the_wrong_key_secret(sqlite_url: str) -> None:
    clutchcall("admin", "rotate-signing-key", "--db", sqlite_url, "--key-secret", "one")
    out = clutchcall(
        "control", "--http", "127.0.0.1:0", "--db", sqlite_url, "--key-secret", "two", check=False
    )
    assert out.returncode == 2 and "--key-secret" in out.stderr


async def test_replicas_on_one_database_share_keys_and_inputs(db_url: str) -> None:
    a = ControlService(open_repository(db_url), MemoryBus(), ControlSettings(db=db_url))
    b = ControlService(open_repository(db_url), MemoryBus(), ControlSettings(db=db_url))
    try:
        org, _k, secret = await a.create_org("shared")
        assert (await b.authenticate(secret)) is not None
        li, _sk = await a.create_input(org.id, "x", "fmp4")
        first = await b.mint_playback(org.id, li.id, 600)  # b creates the first key
        assert (await a.mint_playback(org.id, li.id, 600)).kid == first.kid
        rotated = await a.rotate_signing_key()
        # b signs with the new key at once and publishes both keys.
        assert (await b.mint_playback(org.id, li.id, 600)).kid == rotated.kid
        assert [k["kid"] for k in (await b.jwks())["keys"]] == [rotated.kid, first.kid]
        # Revocations of one replica are visible (and re-published) by the other.
        await a.revoke_token(org.id, first.jti)
        assert [r.id for r in b.repo.active_revocations(0)] == [f"jti:{first.jti}"]
    finally:
        a.repo.close()
        b.repo.close()


def test_limiter_window_and_bounded_memory() -> None:
    now = [0.0]
    lim = FailureLimiter(3, 10.0, max_clients=2, clock=lambda: now[0])
    for _ in range(3):
        assert lim.retry_after("a") is None
        lim.failed("a")
    assert lim.retry_after("a") == 10
    now[0] = 4.2
    assert lim.retry_after("a") == 6
    now[0] = 10.0  # the first failure leaves the window
    assert lim.retry_after("a") is None
    lim.failed("b")
    lim.failed("c")  # evicts the least recently failing client ("a")
    assert lim.statistics() == {"tracked_clients": 2}
    with pytest.raises(ValueError):
        FailureLimiter(0, 1.0)


def test_app_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        ControlSettings(relay_url="ftp://x")
    with pytest.raises(ValueError):
        ControlSettings(auth_failure_limit=0)
    app = create_app(ControlSettings(db="sqlite:///:memory:"), background=False)
    try:
        assert app.openapi()["info"]["title"].startswith("ClutchCall")
    finally:
        app.state.service.repo.close()
