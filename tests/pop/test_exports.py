"""The public surface of ``pop`` is pinned; small helpers of admission."""

from __future__ import annotations

import pytest

import pop
from pop import hop_path_from, namespace_text


def test_exports_are_pinned() -> None:
    assert pop.__all__ == [
        "AdvertiseError",
        "Gatekeeper",
        "LinkKey",
        "PopNode",
        "PopRelay",
        "PopStatistics",
        "Router",
        "SessionAuth",
        "UpstreamLink",
        "UpstreamPool",
        "UpstreamUnavailable",
        "advertised_host",
        "bind_udp",
        "hop_path_from",
        "namespace_text",
        "serve_socket",
    ]
    for name in pop.__all__:
        assert getattr(pop, name) is not None


def test_namespace_text_joins_fields() -> None:
    assert namespace_text((b"stream", b"org_1", b"lv_a")) == "stream/org_1/lv_a"
    assert namespace_text((b"stream/org_1/lv_a",)) == "stream/org_1/lv_a"


@pytest.mark.parametrize(
    ("path", "hops"),
    [
        (None, None),
        ("", None),
        ("/stream/org/lv_a?token=abc", None),
        ("/relay?hops=pop-us", ("pop-us",)),
        ("/relay?hops=pop-ap,pop-us", ("pop-ap", "pop-us")),
        ("/relay?hops=", ()),
    ],
)
def test_hop_path_from(path: str | None, hops: tuple[str, ...] | None) -> None:
    assert hop_path_from(path) == hops


@pytest.mark.parametrize("bad", ["/relay?hops=a,,b", "/relay?hops=" + ",".join(["n"] * 40)])
def test_malformed_hop_path_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        hop_path_from(bad)
