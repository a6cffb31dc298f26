"""Node credentials: how one cluster node proves to another that it is a node.

A relay link (a POP's upstream session to its parent POP or to an origin) is
multiplexed and long-lived, so the parent does not close it when one viewer's
token is revoked or expires.  Naming a node in ``?hops=`` is therefore not
enough to be treated as one: the link presents a *node credential* in the
AUTHORIZATION TOKEN of its CLIENT_SETUP, and anything without a valid one is a
viewer (``docs/relay-links.md``).

A node credential is a compact JWS (HS256) signed with the cluster key every
node shares (the ``cluster_key`` setting, ``CLUTCHCALL_CLUSTER_KEY``):
header ``typ`` :data:`CREDENTIAL_TYPE`, claims ``iss`` = ``aud`` =
:data:`AUDIENCE`, ``sub`` = the node id, ``iat`` and ``exp`` (:data:`LIFETIME`
seconds later; a link presents a fresh one every time it connects).  Playback
tokens are ES256 only, so a node credential is never a viewer's token and a
viewer's token is never a node credential.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any, Final

import jwt

from mesh.auth import AuthError, token_from_auth_tokens
from moqt.types import AuthToken

__all__ = [
    "AUDIENCE",
    "CREDENTIAL_TYPE",
    "LIFETIME",
    "MIN_KEY_LENGTH",
    "NodeCredentialError",
    "credential_node",
    "mint_node_credential",
    "verify_node_credential",
]

AUDIENCE: Final = "clutchcall-node"
CREDENTIAL_TYPE: Final = "clutchcall-node+jwt"
LIFETIME: Final = 120.0
MIN_KEY_LENGTH: Final = 32
_LEEWAY: Final = 5.0


class NodeCredentialError(Exception):
    """A node credential was absent, malformed, expired, or not signed with our key."""


def _check_key(key: str) -> bytes:
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"the cluster key must be at least {MIN_KEY_LENGTH} characters")
    return key.encode("utf-8")


def mint_node_credential(
    key: str, node_id: str, *, now: float | None = None, lifetime: float = LIFETIME
) -> str:
    """A credential for ``node_id`` valid ``lifetime`` seconds from ``now``."""
    issued = time.time() if now is None else now
    claims = {
        "iss": AUDIENCE,
        "aud": AUDIENCE,
        "sub": node_id,
        "iat": int(issued),
        "exp": int(issued + lifetime),
    }
    return jwt.encode(claims, _check_key(key), algorithm="HS256", headers={"typ": CREDENTIAL_TYPE})


def verify_node_credential(key: str, token: str, *, now: float | None = None) -> str:
    """The node id ``token`` was issued to; raises :class:`NodeCredentialError`."""
    secret = _check_key(key)
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != "HS256" or header.get("typ") != CREDENTIAL_TYPE:
            raise NodeCredentialError("not a node credential")
        payload: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=AUDIENCE,
            leeway=_LEEWAY,
            options={"require": ["sub", "iat", "exp"], "verify_exp": False},
        )
    except jwt.PyJWTError as exc:
        raise NodeCredentialError(str(exc)) from exc
    except (TypeError, ValueError) as exc:  # a header or claim of an unexpected type
        raise NodeCredentialError(f"malformed: {exc}") from exc
    exp = payload.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        raise NodeCredentialError("exp is not a finite number")
    at = time.time() if now is None else now
    if exp <= at - _LEEWAY:
        raise NodeCredentialError("expired")
    if exp > at + LIFETIME + _LEEWAY:
        raise NodeCredentialError(f"exp is more than {LIFETIME:.0f} s away: not a node credential")
    sub = payload.get("sub")
    if not isinstance(sub, str) or not sub:
        raise NodeCredentialError("no node id")
    return sub


def credential_node(
    key: str | None, tokens: Iterable[AuthToken] | None, *, now: float | None = None
) -> str | None:
    """The node a CLIENT_SETUP's AUTHORIZATION TOKEN proves the peer is, or None.

    None when this node has no cluster key, no token was given, or the token is
    no valid node credential (then the peer is a viewer like any other).
    """
    if not key:
        return None
    try:
        token = token_from_auth_tokens(tuple(tokens or ()))
    except AuthError:
        return None
    if token is None:
        return None
    try:
        return verify_node_credential(key, token, now=now)
    except NodeCredentialError:
        return None
