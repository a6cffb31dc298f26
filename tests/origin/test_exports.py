"""The origin package's public surface is pinned."""

from __future__ import annotations

import origin


def test_origin_exports() -> None:
    assert sorted(origin.__all__) == sorted(
        [
            "INPUT_STATUS_CHANNEL",
            "INPUT_STATUS_PREFIX",
            "Broadcast",
            "BroadcastStatistics",
            "InputStatus",
            "MalformedStream",
            "MoqtIngest",
            "OriginNode",
            "OriginNodeSettings",
            "OriginStatistics",
            "RtmpIngest",
            "RtmpIngestSettings",
            "RtmpIngestStatistics",
            "StatusReporter",
            "namespace_of",
            "namespace_text",
        ]
    )
    for name in origin.__all__:
        assert getattr(origin, name) is not None
