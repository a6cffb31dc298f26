"""Playback token signing: ES256 keys with ``kid``, the JWKS, sealing at rest.

Keys live in the database (table ``signing_keys``). The newest unretired key
signs; rotation retires the previous key but keeps it in the JWKS until every
token it could have signed has expired (retired_at + max TTL + slack), so POPs
verify old and new tokens during the overlap window.

Private keys are stored as PKCS#8 PEM, sealed with AES-256-GCM when a key
secret is configured (``--key-secret`` / ``CLUTCHCALL_CONTROL_KEY_SECRET``):
``aesgcm:v1:<base64url(nonce || ciphertext)>``. Without a secret they are stored
as ``pem:<PEM>`` and the control plane logs a warning.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from jwt.algorithms import ECAlgorithm

from control.store import SigningKey

__all__ = [
    "KeySealer",
    "SealError",
    "SignedToken",
    "jwk_thumbprint",
    "new_signing_key",
    "public_jwks",
    "sign_playback_token",
]


class SealError(Exception):
    """A sealed private key cannot be opened (wrong or missing key secret)."""


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class KeySealer:
    """Seals private key PEMs with AES-256-GCM under a secret (or stores them plain)."""

    _AAD = b"clutchcall-signing-key"

    def __init__(self, secret: str | None) -> None:
        self._aead = AESGCM(hashlib.sha256(secret.encode("utf-8")).digest()) if secret else None

    @property
    def sealing(self) -> bool:
        return self._aead is not None

    def seal(self, pem: bytes) -> str:
        if self._aead is None:
            return "pem:" + pem.decode("ascii")
        nonce = os.urandom(12)
        return "aesgcm:v1:" + _b64u(nonce + self._aead.encrypt(nonce, pem, self._AAD))

    def open(self, stored: str) -> bytes:
        if stored.startswith("pem:"):
            return stored[4:].encode("ascii")
        if stored.startswith("aesgcm:v1:"):
            if self._aead is None:
                raise SealError("signing key is sealed but no key secret is configured")
            raw = _unb64u(stored[len("aesgcm:v1:") :])
            try:
                return self._aead.decrypt(raw[:12], raw[12:], self._AAD)
            except Exception as exc:
                raise SealError("signing key cannot be opened with this key secret") from exc
        raise SealError("unknown signing key storage format")


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of an EC public JWK (used as its ``kid``)."""
    canonical = json.dumps(
        {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]},
        separators=(",", ":"),
        sort_keys=True,
    )
    return _b64u(hashlib.sha256(canonical.encode("ascii")).digest())


def new_signing_key(sealer: KeySealer, now: float) -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    kid = jwk_thumbprint(jwk)
    jwk.update({"kid": kid, "alg": "ES256", "use": "sig"})
    return SigningKey(
        kid=kid,
        private_key=sealer.seal(pem),
        public_jwk=json.dumps(jwk, sort_keys=True),
        created_at=now,
    )


def public_jwks(keys: list[SigningKey]) -> dict[str, Any]:
    """The JWKS document (public halves only), newest key first."""
    return {"keys": [json.loads(k.public_jwk) for k in keys]}


@dataclass(frozen=True, slots=True)
class SignedToken:
    token: str
    jti: str
    kid: str
    issued_at: float
    expires_at: int


class _PrivateKeyCache:
    def __init__(self) -> None:
        self._keys: dict[str, ec.EllipticCurvePrivateKey] = {}

    def get(self, key: SigningKey, sealer: KeySealer) -> ec.EllipticCurvePrivateKey:
        found = self._keys.get(key.kid)
        if found is None:
            loaded = serialization.load_pem_private_key(sealer.open(key.private_key), None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise SealError(f"signing key {key.kid} is not an EC key")
            found = self._keys[key.kid] = loaded
        return found


_CACHE = _PrivateKeyCache()


def sign_playback_token(
    key: SigningKey,
    sealer: KeySealer,
    *,
    sub: str,
    org: str,
    audience: str,
    namespace: str,
    jti: str,
    now: float,
    ttl_seconds: int,
) -> SignedToken:
    """An ES256 playback JWT (claims per docs/bus-contract.md, plus ``ns`` = the MoQT namespace)."""
    # iat keeps millisecond precision so "revoke every token of an input" (iat <= before)
    # never catches a token minted right after it in the same second.
    iat = round(now, 3)
    exp = int(now) + int(ttl_seconds)
    claims = {
        "sub": sub,
        "org": org,
        "aud": audience,
        "ns": namespace,
        "iat": iat,
        "nbf": int(now),
        "exp": exp,
        "jti": jti,
    }
    token = jwt.encode(
        claims,
        _CACHE.get(key, sealer),
        algorithm="ES256",
        headers={"kid": key.kid, "typ": "JWT"},
    )
    return SignedToken(token=token, jti=jti, kid=key.kid, issued_at=iat, expires_at=exp)
