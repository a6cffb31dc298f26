"""Playback tokens for benchmarks: a local ES256 key, its JWKS file, tokens minted like the control plane."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

__all__ = ["BenchTokens"]

AUDIENCE = "clutchcall-playback"


class BenchTokens:
    """``BenchTokens(dir)`` writes ``dir/jwks.json`` (POPs take ``--jwks FILE``)."""

    def __init__(self, directory: Path, *, org: str = "org_dev", kid: str = "bench-1") -> None:
        self.org = org
        self.kid = kid
        self._key = ec.generate_private_key(ec.SECP256R1())
        public = ECAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        self.jwks_path = directory / "jwks.json"
        self.jwks_path.write_text(
            json.dumps({"keys": [{**public, "kid": kid, "alg": "ES256", "use": "sig"}]})
        )

    def mint(self, sub: str, *, ttl: float = 3600.0) -> dict[str, Any]:
        """``{"token", "jti", "exp"}`` for playback of ``sub`` (claims per BUS_CONTRACT)."""
        now = time.time()
        jti = "jt_" + secrets.token_urlsafe(16)
        claims = {
            "sub": sub,
            "org": self.org,
            "aud": AUDIENCE,
            "iat": int(now),
            "exp": int(now + ttl),
            "jti": jti,
        }
        token = jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.kid})
        return {"token": token, "jti": jti, "exp": claims["exp"]}

    def write(self, path: Path, sub: str, count: int) -> list[dict[str, Any]]:
        """Mint ``count`` tokens into a JSON file for a ``bench._live viewers`` process."""
        minted = [self.mint(sub) for _ in range(count)]
        path.write_text(json.dumps(minted))
        return minted
