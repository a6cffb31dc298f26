"""Playback tokens at the edge: ``token_from_auth_tokens`` (MoQT AUTHORIZATION TOKEN
value), ``token_from_path`` (``?token=``) and ``TokenVerifier.verify`` (compact JWS
split, header JSON, alg/kid checks, then, for tokens this harness signs itself with the
JWKS key, the claims: audience, required claims, time claims, sub/org/jti, target).

Also the relay mesh's node credentials (``verify_node_credential``, HS256).

Byte 0, low 3 bits, picks the mode: 0 token bytes from a MoQT parameter, 1 a
connection path, 2 ``<header JSON> 0x00 <payload JSON>`` signed with the known key so
the fuzzer reaches the claim checks behind the signature; 3 a node credential, 4 a
node credential's header and payload signed with the cluster key. The other bits pick
the target the token must grant. Allowed: AuthError, NodeCredentialError.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.algorithms import ECAlgorithm

from mesh.auth import AuthError, TokenVerifier, token_from_auth_tokens, token_from_path
from mesh.jwks import JwksProvider
from mesh.node_credential import NodeCredentialError, verify_node_credential

__all__ = ["TestOneInput", "seeds"]

NOW = 1_750_000_000
KID = "k1"
_KEY = ec.derive_private_key(0x5EED_F022, ec.SECP256R1())
_DIR = tempfile.TemporaryDirectory(prefix="fuzz-jwks-")
_JWKS = Path(_DIR.name) / "jwks.json"
_jwk = {**ECAlgorithm.to_jwk(_KEY.public_key(), as_dict=True), "kid": KID, "alg": "ES256"}
_JWKS.write_text(json.dumps({"keys": [_jwk]}))
_LOOP = asyncio.new_event_loop()
_VERIFIER = TokenVerifier(JwksProvider(str(_JWKS)), clock=lambda: NOW)
_CLUSTER_KEY = "fuzz-cluster-key-0123456789abcdef0123"
_TARGETS = (None, "lv_abc", "stream/org_1/lv_abc", (b"stream", b"org_1", b"lv_abc"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(header: bytes, payload: bytes) -> str:
    """A compact ES256 JWS over exactly these header and payload bytes."""
    signing_input = f"{_b64(header)}.{_b64(payload)}"
    r, s = decode_dss_signature(_KEY.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def sign_hs256(header: bytes, payload: bytes) -> str:
    """A compact HS256 JWS with the cluster key over exactly these bytes."""
    signing_input = f"{_b64(header)}.{_b64(payload)}"
    mac = hmac.new(_CLUSTER_KEY.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    mode, body = (data[0] & 7) % 5, data[1:]
    target = _TARGETS[(data[0] >> 3) % len(_TARGETS)]
    if mode >= 3:
        if mode == 3:
            token: str | None = body.decode("latin-1")
        else:
            header, _, payload = body.partition(b"\x00")
            token = sign_hs256(header, payload)
        try:
            verify_node_credential(_CLUSTER_KEY, token or "", now=NOW)
        except NodeCredentialError:
            pass
        return
    try:
        if mode == 0:
            token = token_from_auth_tokens(body)
        elif mode == 1:
            token = token_from_path(body)
        else:
            header, _, payload = body.partition(b"\x00")
            token = sign(header, payload)
        _LOOP.run_until_complete(_VERIFIER.verify(token, target))
    except AuthError:
        pass


def seeds() -> Iterator[bytes]:
    """Valid and refused tokens as the control plane signs them, in every mode."""
    claims = {"sub": "lv_abc", "org": "org_1", "aud": "clutchcall-playback", "iat": NOW - 5,
              "exp": NOW + 600, "nbf": NOW - 5, "jti": "jt_1"}  # fmt: skip
    header = {"alg": "ES256", "typ": "JWT", "kid": KID}
    variants = [
        (header, claims),
        (header, {**claims, "aud": ["clutchcall-playback", "x"]}),
        (header, {**claims, "exp": NOW - 100}),
        ({"alg": "none", "kid": KID}, claims),
        ({"alg": "ES256", "kid": "other", "crit": ["b64"], "b64": False}, claims),
    ]
    for i, (h, c) in enumerate(variants):
        hb, cb = json.dumps(h).encode(), json.dumps(c).encode()
        token = sign(hb, cb).encode()
        target = (i % len(_TARGETS)) << 3
        yield bytes((target | 0,)) + b"Bearer " + token
        yield bytes((target | 1,)) + b"/moq?x=1&token=" + token
        yield bytes((target | 2,)) + hb + b"\x00" + cb
    node_header = json.dumps({"alg": "HS256", "typ": "clutchcall-node+jwt"}).encode()
    node_claims = {"iss": "clutchcall-node", "aud": "clutchcall-node", "sub": "pop-1",
                   "iat": NOW - 5, "exp": NOW + 120}  # fmt: skip
    for c in (node_claims, {**node_claims, "exp": NOW - 60}, {**node_claims, "sub": 5}):
        cb = json.dumps(c).encode()
        yield b"\x03" + sign_hs256(node_header, cb).encode()
        yield b"\x04" + node_header + b"\x00" + cb
