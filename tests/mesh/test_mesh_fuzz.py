"""Random input to MESH's parsers may only raise their typed errors (h11's fuzz rule)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

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
