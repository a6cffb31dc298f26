"""Publish target parsing (URL forms of OBS and ffmpeg), admission values, exports."""

from __future__ import annotations

import pytest

import origin.rtmp
from origin.rtmp import (
    Admission,
    EndReason,
    InvalidPublishTarget,
    PublishEnd,
    PublishTarget,
    parse_publish_target,
)
from origin.rtmp.publish import app_is_ours


@pytest.mark.parametrize(
    ("app", "name", "expected"),
    [
        ("live/lv_abc", "sk_123", ("lv_abc", "sk_123")),  # OBS: server .../live/lv_abc
        ("live/lv_abc/", "sk_123", ("lv_abc", "sk_123")),
        ("live/lv_abc?x=1", "sk_123?foo=bar", ("lv_abc", "sk_123")),
        ("live", "lv_abc/sk_123", ("lv_abc", "sk_123")),  # ffmpeg -rtmp_app live
        ("/live", "lv_abc/sk_123?t=1", ("lv_abc", "sk_123")),
        ("live/lv_abc", "sk/with/slashes", ("lv_abc", "sk/with/slashes")),
    ],
)
def test_accepted_forms(app: str, name: str, expected: tuple[str, str]) -> None:
    target = parse_publish_target(app, name)
    assert (target.external_input_id, target.stream_key) == expected


@pytest.mark.parametrize(
    ("app", "name", "match"),
    [
        ("live", "sk_only", "no input id"),
        ("vod/lv_abc", "sk", "unknown application"),
        ("liveX/lv_abc", "sk", "unknown application"),
        ("live/lv abc", "sk", "malformed external input id"),
        ("live/" + "a" * 200, "sk", "malformed external input id"),
        ("live/lv_abc", "", "empty stream key"),
        ("live/lv_abc", "?x=1", "empty stream key"),
        ("live/lv_abc", "key with space", "malformed stream key"),
        ("live", "lv_abc/", "no input id"),
    ],
)
def test_refused_forms(app: str, name: str, match: str) -> None:
    with pytest.raises(InvalidPublishTarget, match=match):
        parse_publish_target(app, name)


def test_custom_app_name_and_app_check() -> None:
    assert parse_publish_target("ingest/lv_1", "k", app_name="ingest").external_input_id == "lv_1"
    assert app_is_ours("live") and app_is_ours("live/lv_1") and app_is_ours("/live/?x")
    assert not app_is_ours("lively") and not app_is_ours("vod")


def test_key_never_shows_in_repr() -> None:
    target = PublishTarget("lv_1", "super-secret")
    assert "super-secret" not in repr(target)


def test_admission_and_end_values() -> None:
    ok = Admission.allow("org_1", "stream/org_1/lv_1")
    assert ok.ok and ok.org_id == "org_1" and ok.namespace == "stream/org_1/lv_1"
    no = Admission.deny("invalid stream key")
    assert not no.ok and no.reason == "invalid stream key"
    assert PublishEnd(EndReason.UNPUBLISHED).clean
    assert not any(PublishEnd(r).clean for r in EndReason if r is not EndReason.UNPUBLISHED)
    assert str(EndReason.CONNECTION_LOST) == "connection_lost"


def test_public_surface_is_pinned() -> None:
    assert sorted(origin.rtmp.__all__) == sorted(
        [
            "UNDEFINED",
            "Admission",
            "AmfDate",
            "AmfDecodeError",
            "AmfEncodeError",
            "AmfValue",
            "AudioTagHeader",
            "Authorizer",
            "ChunkReader",
            "ChunkStreamError",
            "ChunkWriter",
            "ConnectionLimits",
            "EcmaArray",
            "EndReason",
            "FlvFormatError",
            "FlvHeader",
            "FlvMuxer",
            "FlvReader",
            "FlvSink",
            "FlvTag",
            "HandshakeError",
            "InvalidPublishTarget",
            "LimitExceeded",
            "MediaTag",
            "MessageType",
            "PublishEnd",
            "PublishInfo",
            "PublishSink",
            "PublishTarget",
            "RtmpError",
            "RtmpMessage",
            "RtmpPeerError",
            "RtmpProtocolViolation",
            "RtmpServer",
            "RtmpServerSettings",
            "RtmpServerStatistics",
            "RtmpUsageError",
            "ServerConnection",
            "SinkFactory",
            "TagType",
            "TypedObject",
            "VideoTagHeader",
            "parse_publish_target",
            "read_flv",
        ]
    )
    for name in origin.rtmp.__all__:
        assert hasattr(origin.rtmp, name), name
