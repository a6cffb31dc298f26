"""Playback token verification at the edge (ES256 JWTs against the control plane's JWKS).

A viewer presents a JWT (docs/bus-contract.md, ``mesh.bus_contract``: ES256, ``kid`` header, claims
``sub`` = the ``lv_``/``pb_`` id, ``org``, ``aud``, ``iat``, optional ``nbf``,
``exp``, ``jti``) in the MoQT AUTHORIZATION TOKEN parameter or as ``?token=`` on
the connection path.  :class:`TokenVerifier` checks it locally: every refusal is
an :class:`AuthError` whose ``reason`` (:class:`AuthFailure`) is meant for
metrics and logs, while the session closes with the reason phrase
``auth_failed`` and the draft's UNAUTHORIZED code.

Only ES256 with a known ``kid`` is ever accepted: the header's ``alg`` is checked
before any key is looked up (``none``, ``HS256`` with the public key as the HMAC
secret and every other algorithm are refused), and the key object handed to
PyJWT is an EC public key with ``algorithms=["ES256"]``.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import jwt

from mesh.jwks import JwksProvider, JwksUnavailable
from mesh.revocation import Revocation, RevocationSet
from moqt.errors import RequestErrorCode, SessionCloseCode
from moqt.types import AuthToken

__all__ = [
    "AUTH_FAILED",
    "DEFAULT_AUDIENCE",
    "AuthError",
    "AuthFailure",
    "PlaybackClaims",
    "TokenVerifier",
    "seconds_until_expiry",
    "token_from_auth_tokens",
    "token_from_path",
    "wait_until_expiry",
]

AUTH_FAILED: Final = "auth_failed"
DEFAULT_AUDIENCE: Final = "clutchcall-playback"
MAX_TOKEN_BYTES: Final = 8192


class AuthFailure(enum.StrEnum):
    """Why a token was refused (a metrics label, never shown to the viewer beyond auth_failed)."""

    MISSING = "missing"
    MALFORMED = "malformed"
    ALGORITHM = "algorithm_not_allowed"
    UNKNOWN_KID = "unknown_kid"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_TRACK = "wrong_track"
    MISSING_CLAIM = "missing_claim"
    REVOKED = "revoked"
    KEYS_UNAVAILABLE = "keys_unavailable"


class AuthError(Exception):
    """A playback token was refused."""

    close_reason: Final = AUTH_FAILED
    session_close_code: Final = SessionCloseCode.UNAUTHORIZED

    def __init__(self, reason: AuthFailure, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail

    @property
    def request_error_code(self) -> RequestErrorCode:
        """The REQUEST_ERROR code for refusing a single subscription with this error."""
        if self.reason is AuthFailure.EXPIRED:
            return RequestErrorCode.EXPIRED_AUTH_TOKEN
        if self.reason in (AuthFailure.MALFORMED, AuthFailure.MISSING_CLAIM):
            return RequestErrorCode.MALFORMED_AUTH_TOKEN
        return RequestErrorCode.UNAUTHORIZED


@dataclass(frozen=True, slots=True)
class PlaybackClaims:
    """A verified token's claims."""

    sub: str
    org: str
    aud: str
    jti: str
    iat: float
    exp: float
    nbf: float | None
    kid: str

    def revoked_by(self, revocation: Revocation) -> bool:
        return revocation.matches(jti=self.jti, sub=self.sub, iat=self.iat)

    def allows(self, target: str | Sequence[str | bytes]) -> bool:
        """Whether this token grants ``target``: an ``lv_``/``pb_`` id or its namespace.

        A namespace is ``stream/<org>/<id>`` as text or as MoQT namespace fields
        (one field holding the whole path, or the three fields).
        """
        if not isinstance(target, str):
            try:
                fields = [f.decode("utf-8") if isinstance(f, bytes) else f for f in target]
            except UnicodeDecodeError:
                return False
            target = "/".join(fields)
        if "/" not in target:
            return target == self.sub
        parts = target.split("/")
        return (
            len(parts) == 3
            and parts[0] == "stream"
            and (parts[1], parts[2])
            == (
                self.org,
                self.sub,
            )
        )


def seconds_until_expiry(claims: PlaybackClaims, now: float | None = None) -> float:
    """Seconds (>= 0) until the token expires and its session must close."""
    return max(0.0, claims.exp - (time.time() if now is None else now))


async def wait_until_expiry(claims: PlaybackClaims, clock: Callable[[], float] = time.time) -> None:
    """Sleep until ``exp`` by the wall clock (re-checked, so clock steps cannot end it early)."""
    while (left := claims.exp - clock()) > 0:  # noqa: ASYNC110 - a deadline, not an event
        await asyncio.sleep(min(left, 60.0))


def _clean(raw: str) -> str | None:
    token = raw.strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    return token or None


def token_from_auth_tokens(tokens: Iterable[AuthToken] | bytes | None) -> str | None:
    """The JWT in MoQT AUTHORIZATION TOKEN parameter(s) (after alias resolution), or None.

    Raises :class:`AuthError` (MALFORMED) when a token value is not ASCII text.
    """
    if tokens is None:
        return None
    values = [tokens] if isinstance(tokens, bytes) else [t.value for t in tokens]
    for value in values:
        if len(value) > MAX_TOKEN_BYTES:
            raise AuthError(AuthFailure.MALFORMED, "token too long")
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError as exc:
            raise AuthError(AuthFailure.MALFORMED, "token is not ASCII") from exc
        token = _clean(text)
        if token is not None:
            return token
    return None


def token_from_path(path: str | bytes | None) -> str | None:
    """The ``?token=`` value of a connection path or URL (CONNECT path, PATH parameter)."""
    if not path:
        return None
    if isinstance(path, bytes):
        try:
            path = path.decode("ascii")
        except UnicodeDecodeError as exc:
            raise AuthError(AuthFailure.MALFORMED, "path is not ASCII") from exc
    query = urllib.parse.urlsplit(path).query
    values = urllib.parse.parse_qs(query, keep_blank_values=True).get("token", [])
    if len(set(values)) > 1:
        raise AuthError(AuthFailure.MALFORMED, "several different token parameters")
    if not values:
        return None
    if len(values[0]) > MAX_TOKEN_BYTES:
        raise AuthError(AuthFailure.MALFORMED, "token too long")
    return _clean(values[0])


_REQUIRED: Final = ("sub", "org", "aud", "iat", "exp", "jti")


def _time_claim(payload: dict[str, Any], name: str) -> float | None:
    """A NumericDate claim as a finite float (NaN or infinity would never expire)."""
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AuthError(AuthFailure.MALFORMED, f"{name} is not a finite number")
    return float(value)


class TokenVerifier:
    """Verifies playback tokens against a JWKS and (optionally) a revocation set."""

    def __init__(
        self,
        keys: JwksProvider,
        *,
        audience: str = DEFAULT_AUDIENCE,
        revocations: RevocationSet | None = None,
        leeway: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._audience = audience
        self._revocations = revocations
        self._leeway = leeway
        self._clock = clock

    async def verify(
        self, token: str | None, target: str | Sequence[str | bytes] | None = None
    ) -> PlaybackClaims:
        """Check ``token`` (and that it grants ``target`` when given); raises :class:`AuthError`."""
        if not token:
            raise AuthError(AuthFailure.MISSING)
        if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
            raise AuthError(AuthFailure.MALFORMED, "not a compact JWS")
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            # Not only undecodable ones: a kid that is no string or a malformed crit too.
            raise AuthError(AuthFailure.MALFORMED, f"bad header: {exc}") from exc
        alg = header.get("alg")
        if alg != "ES256":
            raise AuthError(AuthFailure.ALGORITHM, f"alg {alg!r} is not ES256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError(AuthFailure.MALFORMED, "no kid in header")
        try:
            key = await self._keys.key(kid)
        except JwksUnavailable as exc:
            raise AuthError(AuthFailure.KEYS_UNAVAILABLE, str(exc)) from exc
        if key is None:
            raise AuthError(AuthFailure.UNKNOWN_KID, f"kid {kid!r}")
        payload = self._decode(token, key)
        claims = self._claims(payload, kid)
        if target is not None and not claims.allows(target):
            raise AuthError(AuthFailure.WRONG_TRACK, f"token for {claims.sub!r}")
        if self._revocations is not None and self._revocations.is_revoked(
            jti=claims.jti, sub=claims.sub, iat=claims.iat
        ):
            raise AuthError(AuthFailure.REVOKED, f"jti {claims.jti!r}")
        return claims

    def _decode(self, token: str, key: Any) -> dict[str, Any]:
        now = self._clock()
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=["ES256"],
                audience=self._audience,
                leeway=self._leeway,
                options={
                    "require": list(_REQUIRED),
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidAudienceError as exc:
            raise AuthError(AuthFailure.WRONG_AUDIENCE, str(exc)) from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(AuthFailure.MISSING_CLAIM, str(exc)) from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthError(AuthFailure.BAD_SIGNATURE, str(exc)) from exc
        except jwt.InvalidAlgorithmError as exc:
            raise AuthError(AuthFailure.ALGORITHM, str(exc)) from exc
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            raise AuthError(AuthFailure.MALFORMED, str(exc)) from exc
        # Time claims are checked here against our (injectable) clock.
        exp, iat = _time_claim(payload, "exp"), _time_claim(payload, "iat")
        nbf = _time_claim(payload, "nbf") if "nbf" in payload else None
        if exp is None or iat is None:
            raise AuthError(AuthFailure.MISSING_CLAIM, "exp and iat are required")
        if exp <= now - self._leeway:
            raise AuthError(AuthFailure.EXPIRED, f"expired {now - exp:.0f} s ago")
        if nbf is not None and nbf > now + self._leeway:
            raise AuthError(AuthFailure.NOT_YET_VALID, "nbf is in the future")
        if iat > now + self._leeway:
            raise AuthError(AuthFailure.NOT_YET_VALID, "iat is in the future")
        return payload

    @staticmethod
    def _claims(payload: dict[str, Any], kid: str) -> PlaybackClaims:
        texts = {k: payload.get(k) for k in ("sub", "org", "jti")}
        for name, value in texts.items():
            if not isinstance(value, str) or not value:
                raise AuthError(AuthFailure.MISSING_CLAIM, f"{name} must be a non-empty string")
        aud = payload["aud"]
        nbf = payload.get("nbf")
        return PlaybackClaims(
            sub=str(texts["sub"]),
            org=str(texts["org"]),
            aud=aud if isinstance(aud, str) else ",".join(map(str, aud)),
            jti=str(texts["jti"]),
            iat=float(payload["iat"]),
            exp=float(payload["exp"]),
            nbf=None if nbf is None else float(nbf),
            kid=kid,
        )
