"""Odd JOSE headers refuse the session (auth_failed, counted) instead of crashing it."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from mesh.auth import AuthError, AuthFailure, TokenVerifier
from mesh.jwks import JwksProvider
from pop import PopNode
from tests.pop.lab import Tokens, closed_session
from tests.pop.test_admission import assert_auth_failed, failures, origin, pop, url

__all__ = ["origin", "pop"]  # fixtures


def _with_header(tokens: Tokens, header: dict[str, Any]) -> str:
    """A token whose header is ``header`` (signature of the real key over it)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    real = tokens.mint()
    _, payload, signature = real.split(".")
    return f"{b64(json.dumps(header).encode())}.{payload}.{signature}"


HEADERS = [
    {"alg": "ES256", "kid": 5},
    {"alg": "ES256", "kid": ["k1"]},
    {"alg": "ES256", "kid": "k1", "crit": "exp"},
    {"alg": "ES256", "kid": "k1", "crit": [1]},
    {"alg": "ES256", "kid": "k1", "crit": []},
    {"alg": "ES256", "kid": "k1", "crit": ["unknown-extension"]},
]


@pytest.mark.parametrize("header", HEADERS, ids=[json.dumps(h) for h in HEADERS])
async def test_odd_header_is_auth_failed_and_counted(
    pop: PopNode, tokens: Tokens, header: dict[str, Any]
) -> None:
    before = failures(pop, "malformed")
    closed = await closed_session(url(pop), subscribe_token=_with_header(tokens, header))
    assert_auth_failed(closed)
    assert failures(pop, "malformed") == before + 1


@pytest.mark.parametrize("header", HEADERS, ids=[json.dumps(h) for h in HEADERS])
async def test_verifier_raises_auth_error(tokens: Tokens, header: dict[str, Any]) -> None:
    verifier = TokenVerifier(JwksProvider(str(tokens.jwks_path)))
    with pytest.raises(AuthError) as caught:
        await verifier.verify(_with_header(tokens, header))
    assert caught.value.reason is AuthFailure.MALFORMED
