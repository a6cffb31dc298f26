"""Random input to MESH's parsers may only raise their typed errors (h11's fuzz rule)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import jwt
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.auth import AuthError, TokenVerifier, token_from_auth_tokens, token_from_path
from mesh.jwks import JwksProvider
from mesh.revocation import Revocation
from mesh.topology import NodeInfo, Route, parse_hop_path

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
records = st.dictionaries(
    st.sampled_from(["role", "region", "quic", "http", "load", "hosts", "started", "origin", "at",
                     "jti", "sub", "exp", "before", "node"]) | st.text(max_size=6),
    values,
    max_size=8,
)  # fmt: skip


@given(st.text(max_size=200) | st.binary(max_size=200))
def test_hop_path(text: str | bytes) -> None:
    try:
        parse_hop_path(text)
    except ValueError:
        pass


@given(records)
def test_bus_records(record: dict[str, Any]) -> None:
    for parse in (
        lambda: NodeInfo.from_record("n", record),
        lambda: Route.from_record("ns", record),
        lambda: Revocation.from_message(record),
        lambda: Revocation.from_record("clutchcall:revoked:sub:x", record),
    ):
        try:
            parse()
        except ValueError:
            pass


@given(st.text(max_size=300) | st.binary(max_size=300))
def test_token_extraction(raw: str | bytes) -> None:
    try:
        token_from_path(raw)
        token_from_auth_tokens(raw if isinstance(raw, bytes) else raw.encode("utf-8", "replace"))
    except AuthError:
        pass


def test_verifier_on_random_tokens(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": []}))
    dotted = st.lists(
        st.text(alphabet='abcXYZ019-_=+/{}":,', max_size=40), min_size=1, max_size=4
    ).map(".".join)

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=100) | dotted)
    def check(token: str) -> None:
        try:
            # A fresh verifier per run: asyncio primitives must not cross event loops.
            asyncio.run(TokenVerifier(JwksProvider(str(path))).verify(token, "lv_x"))
        except AuthError:
            pass

    check()


def test_verifier_on_random_payloads_and_signatures_with_a_known_kid(tmp_path: Path) -> None:
    import base64

    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    private = ec.generate_private_key(ec.SECP256R1())
    jwk = {**ECAlgorithm.to_jwk(private.public_key(), as_dict=True), "kid": "k1"}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(b'{"alg":"ES256","kid":"k1"}')
    now = time.time()
    claim_values = values | st.floats(now - 100, now + 100) | st.just("lv_x")
    shaped = st.fixed_dictionaries(
        {k: claim_values for k in ("sub", "org", "iat", "exp", "jti")},
        optional={"aud": st.just("clutchcall-playback") | values, "nbf": claim_values},
    )
    payloads = (
        st.binary(max_size=80)
        | records.map(lambda r: json.dumps(r, default=repr).encode())
        | shaped.map(lambda r: json.dumps(r, default=repr).encode())
    )

    @settings(max_examples=300, deadline=None)
    @given(payloads, st.binary(max_size=80), st.booleans())
    def check(payload: bytes, signature: bytes, sign: bool) -> None:
        if sign:  # validly signed garbage claims exercise claim validation
            token = jwt.api_jws.encode(payload, private, algorithm="ES256", headers={"kid": "k1"})
        else:
            token = f"{header}.{b64(payload)}.{b64(signature)}"
        try:
            claims = asyncio.run(TokenVerifier(JwksProvider(str(path))).verify(token, "lv_x"))
        except AuthError:
            return
        # Whatever got through is a well-formed, currently valid token for lv_x.
        assert claims.sub == "lv_x" and claims.org and claims.jti
        assert math.isfinite(claims.exp) and claims.exp > time.time() - 2
        assert math.isfinite(claims.iat) and claims.iat <= time.time() + 2

    check()
