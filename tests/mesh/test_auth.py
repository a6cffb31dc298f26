"""Playback-token verification with real ES256 keys; every refusal case; JWKS file/URL/bus."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm

from mesh.auth import (
    AUTH_FAILED,
    AuthError,
    AuthFailure,
    PlaybackClaims,
    TokenVerifier,
    seconds_until_expiry,
    token_from_auth_tokens,
    token_from_path,
    wait_until_expiry,
)
from mesh.bus import MemoryBus, RedisBus
from mesh.jwks import JWKS_KEY, JwksProvider, parse_jwks
from mesh.revocation import Revocation, RevocationSet
from moqt.errors import RequestErrorCode, SessionCloseCode
from moqt.types import AuthToken
from tests.mesh.conftest import wait_until

AUD = "clutchcall-playback"


@dataclass
class SigningKey:
    kid: str
    private: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def jwk(self) -> dict[str, Any]:
        public = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "alg": "ES256", "use": "sig"}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm="ES256", headers={"kid": self.kid, **header}
        )


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [k.jwk() for k in keys]}


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "lv_abc",
        "org": "org_1",
        "aud": AUD,
        "iat": now,
        "exp": now + 600,
        "jti": "jt_1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(signature)}"


@pytest.fixture
def key() -> SigningKey:
    return SigningKey("k1")


@pytest.fixture
def jwks_file(tmp_path: Path, key: SigningKey) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(key)))
    return path


@pytest.fixture
def verifier(jwks_file: Path) -> TokenVerifier:
    return TokenVerifier(JwksProvider(str(jwks_file)), audience=AUD)


async def refused(
    verifier: TokenVerifier, token: str | None, target: str | None = None
) -> AuthFailure:
    with pytest.raises(AuthError) as info:
        await verifier.verify(token, target)
    assert info.value.close_reason == AUTH_FAILED
    assert info.value.session_close_code == SessionCloseCode.UNAUTHORIZED
    return info.value.reason


async def test_valid_token_is_accepted_for_its_id_and_namespace(
    verifier: TokenVerifier, key: SigningKey
) -> None:
    token = key.sign(claims(nbf=int(time.time()) - 5))
    got = await verifier.verify(token, "lv_abc")
    assert (got.sub, got.org, got.jti, got.kid, got.aud) == ("lv_abc", "org_1", "jt_1", "k1", AUD)
    assert await verifier.verify(token, "stream/org_1/lv_abc") == got
    assert await verifier.verify(token, (b"stream", b"org_1", b"lv_abc")) == got
    assert await verifier.verify(token, (b"stream/org_1/lv_abc",)) == got
    assert await verifier.verify(token) == got  # no target: the caller checks later


@pytest.mark.parametrize(
    "token",
    [None, "", "abc", "a.b", "a.b.c", "!!!.###.$$$", "x" * 9000],
    ids=["none", "empty", "one-part", "two-parts", "junk-b64", "bad-chars", "huge"],
)
async def test_missing_and_malformed_tokens(verifier: TokenVerifier, token: str | None) -> None:
    reason = await refused(verifier, token)
    assert reason in (AuthFailure.MISSING, AuthFailure.MALFORMED)
    assert reason is (AuthFailure.MISSING if not token else AuthFailure.MALFORMED)


async def test_alg_none_is_refused(verifier: TokenVerifier) -> None:
    token = raw_token({"alg": "none", "kid": "k1", "typ": "JWT"}, claims())
    assert await refused(verifier, token) is AuthFailure.ALGORITHM
    token = raw_token({"alg": "None", "kid": "k1"}, claims())
    assert await refused(verifier, token) is AuthFailure.ALGORITHM


async def test_hs256_signed_with_the_public_key_is_refused(
    verifier: TokenVerifier, key: SigningKey
) -> None:
    pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header, payload = {"alg": "HS256", "kid": "k1", "typ": "JWT"}, claims()
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert await refused(verifier, f"{signing_input}.{b64(mac)}") is AuthFailure.ALGORITHM
    # Same trick with the header claiming ES256 but an HMAC as signature: bad signature.
    header = {"alg": "ES256", "kid": "k1"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert await refused(verifier, f"{signing_input}.{b64(mac)}") in (
        AuthFailure.BAD_SIGNATURE,
        AuthFailure.MALFORMED,
    )


async def test_other_algorithms_are_refused(verifier: TokenVerifier) -> None:
    other = ec.generate_private_key(ec.SECP384R1())
    token = jwt.encode(claims(), other, algorithm="ES384", headers={"kid": "k1"})
    assert await refused(verifier, token) is AuthFailure.ALGORITHM
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"})
    assert await refused(verifier, token) is AuthFailure.ALGORITHM


async def test_unknown_or_missing_kid_is_refused(verifier: TokenVerifier) -> None:
    stranger = SigningKey("k-unknown")
    assert await refused(verifier, stranger.sign(claims())) is AuthFailure.UNKNOWN_KID
    token = jwt.encode(claims(), stranger.private, algorithm="ES256")  # no kid at all
    assert await refused(verifier, token) is AuthFailure.MALFORMED


async def test_wrong_signature_and_tampering_are_refused(
    verifier: TokenVerifier, key: SigningKey
) -> None:
    impostor = SigningKey("k1")  # claims our kid, different key
    assert await refused(verifier, impostor.sign(claims())) is AuthFailure.BAD_SIGNATURE
    header, _, signature = key.sign(claims()).split(".")
    forged = b64(json.dumps(claims(sub="lv_other")).encode())
    assert await refused(verifier, f"{header}.{forged}.{signature}") is AuthFailure.BAD_SIGNATURE


async def test_time_claims(verifier: TokenVerifier, key: SigningKey) -> None:
    now = int(time.time())
    assert await refused(verifier, key.sign(claims(exp=now - 10))) is AuthFailure.EXPIRED
    assert await refused(verifier, key.sign(claims(nbf=now + 60))) is AuthFailure.NOT_YET_VALID
    assert await refused(verifier, key.sign(claims(iat=now + 60))) is AuthFailure.NOT_YET_VALID
    assert await refused(verifier, key.sign(claims(exp="soon"))) is AuthFailure.MALFORMED
    for never in (float("nan"), float("inf")):  # would never expire
        assert await refused(verifier, key.sign(claims(exp=never))) is AuthFailure.MALFORMED
    assert await refused(verifier, key.sign(claims(nbf=True))) is AuthFailure.MALFORMED


async def test_audience_and_track(verifier: TokenVerifier, key: SigningKey) -> None:
    assert await refused(verifier, key.sign(claims(aud="other"))) is AuthFailure.WRONG_AUDIENCE
    token = key.sign(claims())
    for target in ("lv_other", "stream/org_2/lv_abc", "stream/org_1/lv_other", "vod/org_1/lv_abc"):
        assert await refused(verifier, token, target) is AuthFailure.WRONG_TRACK


@pytest.mark.parametrize("missing", ["sub", "org", "aud", "exp", "iat", "jti"])
async def test_missing_claims(verifier: TokenVerifier, key: SigningKey, missing: str) -> None:
    assert await refused(verifier, key.sign(claims(**{missing: None}))) is AuthFailure.MISSING_CLAIM


async def test_non_string_subject_is_refused(verifier: TokenVerifier, key: SigningKey) -> None:
    reason = await refused(verifier, key.sign(claims(org=7)))
    assert reason is AuthFailure.MISSING_CLAIM


async def test_revoked_tokens(jwks_file: Path, key: SigningKey) -> None:
    revocations = RevocationSet()
    verifier = TokenVerifier(JwksProvider(str(jwks_file)), revocations=revocations)
    now = time.time()
    old = key.sign(claims(jti="jt_old", iat=int(now) - 100))
    fresh = key.sign(claims(jti="jt_new", iat=int(now)))
    await verifier.verify(old)
    revocations.apply(Revocation("sub", "lv_abc", exp=now + 600, before=now - 50))
    assert await refused(verifier, old) is AuthFailure.REVOKED
    await verifier.verify(fresh)  # minted after "before": still good
    revocations.apply(Revocation("jti", "jt_new", exp=now + 600))
    assert await refused(verifier, fresh) is AuthFailure.REVOKED


def test_error_codes_for_refusing_one_request() -> None:
    assert AuthError(AuthFailure.EXPIRED).request_error_code is RequestErrorCode.EXPIRED_AUTH_TOKEN
    assert (
        AuthError(AuthFailure.MALFORMED).request_error_code is RequestErrorCode.MALFORMED_AUTH_TOKEN
    )
    assert AuthError(AuthFailure.REVOKED).request_error_code is RequestErrorCode.UNAUTHORIZED
    assert str(AuthError(AuthFailure.REVOKED, "jti x")) == "revoked: jti x"


def test_token_extraction() -> None:
    assert token_from_auth_tokens([AuthToken(0, b"  a.b.c ")]) == "a.b.c"
    assert token_from_auth_tokens([AuthToken(0, b""), AuthToken(1, b"Bearer x.y.z")]) == "x.y.z"
    assert token_from_auth_tokens(b"a.b.c") == "a.b.c"
    assert token_from_auth_tokens(None) is None and token_from_auth_tokens([]) is None
    with pytest.raises(AuthError) as info:
        token_from_auth_tokens([AuthToken(0, "é".encode())])
    assert info.value.reason is AuthFailure.MALFORMED
    assert token_from_path("/moq?token=a.b.c&x=1") == "a.b.c"
    assert token_from_path(b"https://pop.example/moq?x=1&token=a.b.c") == "a.b.c"
    assert token_from_path("/moq?token=a.b.c&token=a.b.c") == "a.b.c"
    assert token_from_path("/moq") is None and token_from_path("/moq?token=") is None
    assert token_from_path(None) is None
    with pytest.raises(AuthError):
        token_from_path("/moq?token=a.b.c&token=d.e.f")


async def test_expiry_helpers() -> None:
    now = time.time()
    c = PlaybackClaims("lv_x", "org_1", AUD, "jt", now, now + 0.2, None, "k1")
    assert 0.1 < seconds_until_expiry(c) <= 0.2
    assert seconds_until_expiry(c, now=now + 5) == 0.0
    started = time.monotonic()
    await wait_until_expiry(c)
    assert time.time() >= c.exp and time.monotonic() - started < 0.5


def test_parse_jwks_keeps_only_es256_public_keys(key: SigningKey) -> None:
    private_jwk = {**ECAlgorithm.to_jwk(key.private, as_dict=True), "kid": "with-d"}
    p384 = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key(), as_dict=True)
    doc = {
        "keys": [
            key.jwk(),
            private_jwk,
            {**key.jwk(), "kid": ""},
            {**key.jwk(), "kid": "enc", "use": "enc"},
            {**key.jwk(), "kid": "rs", "alg": "RS256"},
            {**p384, "kid": "p384"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "broken"},
            "junk",
        ]
    }
    keys = parse_jwks(doc)
    assert sorted(keys) == ["k1", "with-d"]
    assert all(isinstance(k, ec.EllipticCurvePublicKey) for k in keys.values())
    bad: object
    for bad in ([], {"keys": {}}, "x"):
        with pytest.raises(ValueError):
            parse_jwks(bad)


async def test_file_jwks_refreshes_on_unknown_kid_with_a_rate_limit(
    jwks_file: Path, key: SigningKey
) -> None:
    clock = [100.0]
    provider = JwksProvider(str(jwks_file), min_refresh_interval=30, clock=lambda: clock[0])
    verifier = TokenVerifier(provider)
    await verifier.verify(key.sign(claims()))
    assert provider.fetches == 1
    rotated = SigningKey("k2")
    token = rotated.sign(claims())
    assert await refused(verifier, token) is AuthFailure.UNKNOWN_KID  # within the rate limit
    assert provider.fetches == 1
    jwks_file.write_text(json.dumps(jwks(key, rotated)))  # noqa: ASYNC240 - tiny file
    clock[0] += 10
    assert await refused(verifier, token) is AuthFailure.UNKNOWN_KID  # still rate-limited
    clock[0] += 25
    await verifier.verify(token)
    assert provider.fetches == 2
    for i in range(5):  # random kids cannot force a fetch each
        await refused(verifier, SigningKey(f"rand{i}").sign(claims()))
    assert provider.fetches == 2


class _JwksHandler(BaseHTTPRequestHandler):
    server: _JwksServer

    def do_GET(self) -> None:
        self.server.hits += 1
        body = json.dumps(self.server.document).encode()
        status = 200 if self.path == "/.well-known/jwks.json" else 404
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _JwksServer(ThreadingHTTPServer):
    document: dict[str, Any]
    hits: int


@pytest.fixture
def jwks_server(key: SigningKey) -> Iterator[_JwksServer]:
    server = _JwksServer(("127.0.0.1", 0), _JwksHandler)
    server.document, server.hits = jwks(key), 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


async def test_url_jwks_is_cached_and_refetched_for_a_new_kid(
    jwks_server: _JwksServer, key: SigningKey
) -> None:
    url = f"http://127.0.0.1:{jwks_server.server_address[1]}/.well-known/jwks.json"
    provider = JwksProvider(url, min_refresh_interval=0.0)
    verifier = TokenVerifier(provider)
    for _ in range(3):
        await verifier.verify(key.sign(claims()))
    assert jwks_server.hits == 1  # cached
    rotated = SigningKey("k2")
    jwks_server.document = jwks(key, rotated)
    await verifier.verify(rotated.sign(claims()))
    assert jwks_server.hits == 2
    # The server goes away: cached keys keep working, unknown kids stay unknown.
    jwks_server.shutdown()
    jwks_server.server_close()
    await verifier.verify(key.sign(claims()))
    assert await refused(verifier, SigningKey("k3").sign(claims())) is AuthFailure.UNKNOWN_KID
    assert provider.failures == 1


async def test_unreachable_jwks_refuses_with_keys_unavailable(key: SigningKey) -> None:
    verifier = TokenVerifier(JwksProvider("http://127.0.0.1:9/jwks.json"))
    assert await refused(verifier, key.sign(claims())) is AuthFailure.KEYS_UNAVAILABLE
    verifier = TokenVerifier(JwksProvider("/nonexistent/jwks.json"))
    assert await refused(verifier, key.sign(claims())) is AuthFailure.KEYS_UNAVAILABLE


async def test_bus_record_jwks(redis_url: str, key: SigningKey) -> None:
    with pytest.raises(ValueError):
        JwksProvider("bus")
    bus = RedisBus(redis_url)
    try:
        verifier = TokenVerifier(JwksProvider("bus", bus=bus, min_refresh_interval=0))
        assert await refused(verifier, key.sign(claims())) is AuthFailure.KEYS_UNAVAILABLE
        await bus.set(JWKS_KEY, jwks(key))
        await verifier.verify(key.sign(claims()))
    finally:
        await bus.close()
    memory = MemoryBus()
    await memory.set(JWKS_KEY, jwks(key))
    await TokenVerifier(JwksProvider("bus", bus=memory)).verify(key.sign(claims()))


async def test_stale_key_set_survives_a_dead_source_with_rate_limited_retries(
    jwks_file: Path, key: SigningKey
) -> None:
    clock = [0.0]
    provider = JwksProvider(
        str(jwks_file), max_age=100, min_refresh_interval=10, clock=lambda: clock[0]
    )
    verifier = TokenVerifier(provider)
    token = key.sign(claims())
    await verifier.verify(token)
    jwks_file.unlink()  # noqa: ASYNC240 - the source dies
    clock[0] = 150  # stale: one refresh attempt, which fails; the cached key still works
    await verifier.verify(token)
    assert (provider.fetches, provider.failures) == (2, 1)
    clock[0] = 155
    await verifier.verify(token)
    assert provider.fetches == 2  # no retry inside the interval
    clock[0] = 161
    await verifier.verify(token)
    assert provider.fetches == 3


async def test_background_refresh_picks_up_rotation(jwks_file: Path, key: SigningKey) -> None:
    provider = JwksProvider(str(jwks_file), max_age=0.2)
    task = asyncio.create_task(provider.run())
    try:
        await wait_until(lambda: "k1" in provider.keys(), within=1)
        jwks_file.write_text(json.dumps(jwks(SigningKey("k2"))))  # noqa: ASYNC240
        await wait_until(lambda: set(provider.keys()) == {"k2"}, within=1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_bus_jwks_published_after_start_is_picked_up_quickly(
    redis_url: str, key: SigningKey
) -> None:
    """A POP up before the control plane: with no key at all, retries are not held 10 s."""
    clock = [0.0]
    bus = RedisBus(redis_url)
    try:
        await bus.delete(JWKS_KEY)
        provider = JwksProvider("bus", bus=bus, min_refresh_interval=10, clock=lambda: clock[0])
        verifier = TokenVerifier(provider)
        token = key.sign(claims())
        assert await refused(verifier, token) is AuthFailure.KEYS_UNAVAILABLE
        await bus.set(JWKS_KEY, jwks(key))  # the control plane comes up
        clock[0] = 0.1  # inside the small floor: no new fetch yet
        assert await refused(verifier, token) is AuthFailure.KEYS_UNAVAILABLE
        assert provider.fetches == 1
        clock[0] = 0.3
        await verifier.verify(token)
        assert provider.fetches == 2
        # with keys present, an unknown kid keeps the full rate limit
        other = SigningKey("k9")
        clock[0] = 0.6
        assert await refused(verifier, other.sign(claims())) is AuthFailure.UNKNOWN_KID
        clock[0] = 9.0
        assert await refused(verifier, other.sign(claims())) is AuthFailure.UNKNOWN_KID
        assert provider.fetches == 2
        clock[0] = 10.4
        assert await refused(verifier, other.sign(claims())) is AuthFailure.UNKNOWN_KID
        assert provider.fetches == 3
    finally:
        await bus.delete(JWKS_KEY)
        await bus.close()


async def test_background_refresh_retries_quickly_while_no_key_is_loaded(
    key: SigningKey,
) -> None:
    bus = MemoryBus()
    provider = JwksProvider("bus", bus=bus, max_age=300, min_refresh_interval=10)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(provider.run())
        await wait_until(lambda: provider.failures >= 1)
        await asyncio.sleep(0.1)
        await bus.set(JWKS_KEY, jwks(key))
        took = await wait_until(lambda: bool(provider.keys()), within=3.0)
        assert took < 2.0
        await TokenVerifier(provider).verify(key.sign(claims()))
        task.cancel()


class _GatedBus(MemoryBus):
    """A key-set source whose reads wait for ``opened``: a refresh in flight, held open."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = asyncio.Event()
        self.reads = 0

    async def get(self, key: str) -> Any:
        self.reads += 1
        await self.opened.wait()
        return await super().get(key)


async def test_viewer_arriving_during_the_first_refresh_waits_for_it(key: SigningKey) -> None:
    """The start-up race CI caught: the background refresh had begun, so a viewer
    inside the retry floor found no set yet and was refused with keys_unavailable."""
    bus = _GatedBus()
    await bus.set(JWKS_KEY, jwks(key))
    provider = JwksProvider("bus", bus=bus, min_refresh_interval=10)
    async with asyncio.TaskGroup() as tg:
        background = tg.create_task(provider.run())
        await wait_until(lambda: bus.reads == 1)
        verify = tg.create_task(TokenVerifier(provider).verify(key.sign(claims())))
        await asyncio.sleep(0.05)
        assert not verify.done()  # held behind the refresh, not refused
        bus.opened.set()
        await asyncio.wait_for(verify, 2)
        assert bus.reads == 1  # answered by the one refresh, not a second fetch
        background.cancel()
