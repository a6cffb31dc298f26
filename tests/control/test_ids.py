"""Ids sort by creation time and validate; secrets are long, random and compared by hash."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from control.ids import (
    new_api_key,
    new_id,
    new_jti,
    new_stream_key,
    secret_matches,
    sha256_hex,
    valid_id,
)


@given(st.floats(min_value=0, max_value=1e11), st.floats(min_value=0.002, max_value=1e6))
def test_ids_sort_by_time(t: float, dt: float) -> None:
    a, b = new_id("li", now=t), new_id("li", now=t + dt)  # until year ~5000
    assert a < b
    assert valid_id(a, "li") and len(a) == 3 + 26
    assert not valid_id(a, "lv")


def test_operator_ids_and_garbage() -> None:
    assert valid_id("li_xyz", "li") and valid_id("org_abc", "org")
    for bad in ["li_", "li_a-b", "li_" + "a" * 65, "lv_x", "li_x\x00", "li_x/../y", ""]:
        assert not valid_id(bad, "li")


def test_secrets() -> None:
    keys = {new_stream_key() for _ in range(100)}
    assert len(keys) == 100 and all(k.startswith("sk_") and len(k) == 35 for k in keys)
    assert new_api_key().startswith("ck_") and new_jti().startswith("jt_")
    key = new_stream_key()
    assert secret_matches(key, sha256_hex(key)) and not secret_matches(key + "x", sha256_hex(key))
