"""Identifiers and secrets of the control plane.

Resource ids are ``<prefix>_`` + 26 Crockford base32 characters: a 48-bit
millisecond timestamp followed by 80 random bits (ULID layout), so ids sort by
creation time and serve directly as pagination cursors. Secrets (API keys,
stream keys) are at least 192 random bits and are only ever stored as their
SHA-256 hex digest; they are compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

__all__ = [
    "ID_BODY",
    "ID_PATTERN",
    "new_api_key",
    "new_id",
    "new_jti",
    "new_stream_key",
    "secret_matches",
    "sha256_hex",
    "valid_id",
]

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"

# Ids we accept: ours, and operator-chosen ones (``admin create-org --org-id org_abc``).
ID_BODY = r"[A-Za-z0-9]{1,64}"
ID_PATTERN = re.compile(rf"^[a-z]{{2,4}}_{ID_BODY}$")


def valid_id(value: str, prefix: str) -> bool:
    """``value`` is a well-formed id of kind ``prefix`` (``li``, ``org``, ...)."""
    return value.startswith(prefix + "_") and ID_PATTERN.match(value) is not None


def new_id(prefix: str, *, now: float | None = None) -> str:
    """A time-ordered id such as ``li_01j9...``."""
    millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def new_stream_key() -> str:
    """A publisher stream key (docs/bus-contract.md: ``sk_`` + token_urlsafe(24))."""
    return "sk_" + secrets.token_urlsafe(24)


def new_api_key() -> str:
    """A bearer API key; only its SHA-256 is stored."""
    return "ck_" + secrets.token_urlsafe(32)


def new_jti() -> str:
    return "jt_" + secrets.token_urlsafe(16)


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, digest_hex: str) -> bool:
    return hmac.compare_digest(sha256_hex(secret), digest_hex)
