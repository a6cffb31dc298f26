"""Rows of the control plane's database, as frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ApiKey",
    "IdempotencyBinding",
    "Ingest",
    "InputStatus",
    "LiveInput",
    "Org",
    "PlaybackToken",
    "Revocation",
    "SigningKey",
]

Ingest = Literal["fmp4", "rtmp"]
InputStatus = Literal["idle", "live", "error"]


@dataclass(frozen=True, slots=True)
class Org:
    id: str
    name: str
    created_at: float


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    org_id: str
    secret_sha256: str
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class LiveInput:
    id: str
    org_id: str
    external_input_id: str
    name: str
    ingest: Ingest
    stream_key_sha256: str
    stream_key_rotated_at: float
    status: InputStatus
    status_detail: str | None
    status_at: float | None
    created_at: float
    updated_at: float

    @property
    def namespace(self) -> str:
        return f"stream/{self.org_id}/{self.external_input_id}"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An ES256 signing key. ``private_key`` is PKCS#8 PEM, possibly sealed (see signing.py)."""

    kid: str
    private_key: str
    public_jwk: str  # JSON text of the public JWK
    created_at: float
    retired_at: float | None = None
    # When a retired key leaves the JWKS: every token it signed has expired by then.
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class PlaybackToken:
    jti: str
    org_id: str
    input_id: str
    sub: str
    kid: str
    issued_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class Revocation:
    """``kind`` "jti": one token; "sub": every token of ``target`` issued at or before ``before``."""

    kind: Literal["jti", "sub"]
    target: str
    org_id: str
    before: float | None
    expires_at: float
    created_at: float

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.target}"


@dataclass(frozen=True, slots=True)
class IdempotencyBinding:
    """An ``Idempotency-Key``'s answer, committed with the record its request made.

    ``name`` is the key's record name (org and SHA-256 of the key, never the key);
    ``answer`` the sealed answer (base64), which only the client's key opens."""

    name: str
    org_id: str
    answer: str
    expires_at: float
    created_at: float
