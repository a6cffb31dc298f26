"""CMSF catalog: build from real init segments, JSON round trip, validation of every rule."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.catalog import (
    CATALOG_TRACK,
    MSF_CATALOG_TRACK,
    Catalog,
    CatalogTrack,
    is_catalog_track,
)
from media.errors import CatalogError, MediaError
from media.fmp4 import InitSegment, split_fmp4


def init_of(data: bytes) -> InitSegment:
    init = split_fmp4(data)[0]
    assert isinstance(init, InitSegment)
    return init


@pytest.fixture
def catalog(video_fmp4: bytes, audio_fmp4: bytes) -> Catalog:
    video, audio = init_of(video_fmp4), init_of(audio_fmp4)
    return Catalog.build(
        [
            CatalogTrack.from_init("360p", video, bitrate=800_000, framerate=30, alt_group=1, priority=2,
                                   max_group_duration=2000),
            CatalogTrack.from_init("audio", audio, bitrate=128_000, priority=1),
        ],
        generated_at=1_746_104_606_044,
    )  # fmt: skip


def test_track_names() -> None:
    assert (CATALOG_TRACK, MSF_CATALOG_TRACK) == (".catalog", "catalog")
    assert is_catalog_track(".catalog") and is_catalog_track(b"catalog")
    assert not is_catalog_track("360p") and not is_catalog_track(b"\xff")


def test_built_entries_come_from_init_segments(catalog: Catalog, video_fmp4: bytes) -> None:
    obj = json.loads(catalog.to_json())
    assert obj["version"] == "draft-01" and obj["generatedAt"] == 1_746_104_606_044
    video, audio = obj["tracks"]
    assert video == {
        "name": "360p", "packaging": "cmaf", "isLive": True, "role": "video", "renderGroup": 1,
        "altGroup": 1, "codec": "avc1.64001e", "mimeType": "video/mp4", "bitrate": 800_000,
        "width": 640, "height": 360, "framerate": 30, "timescale": 15360, "maxGroupDuration": 2000,
        "maxGrpSapStartingType": 2, "priority": 2, "initData": video["initData"],
    }  # fmt: skip
    assert base64.b64decode(video["initData"]) == init_of(video_fmp4).data
    assert audio["codec"] == "mp4a.40.2" and audio["samplerate"] == 48000
    assert audio["channelConfig"] == "2" and audio["role"] == "audio"
    assert "width" not in audio and "altGroup" not in audio


def test_round_trip(catalog: Catalog) -> None:
    parsed = Catalog.parse(catalog.to_json())
    assert parsed == catalog
    assert Catalog.parse(catalog.to_json().decode()) == catalog
    assert parsed.track("audio") == catalog.tracks[1]
    assert [t.name for t in parsed.by_role("video")] == ["360p"]


def test_ended_catalog(catalog: Catalog) -> None:
    ended = Catalog.parse(catalog.ended(generated_at=5).to_json())
    assert ended.is_complete and not any(t.is_live for t in ended.tracks)
    assert json.loads(ended.to_json())["isComplete"] is True


def test_cmsf_spec_example_parses() -> None:
    example = {
        "version": 1,
        "generatedAt": 1746104606044,
        "tracks": [
            {"name": "hd", "renderGroup": 1, "packaging": "cmaf", "isLive": True, "initData": "AAAAIGZ0eXA=",
             "role": "video", "codec": "avc1.640028", "width": 1920, "height": 1080, "bitrate": 5000000,
             "framerate": 30, "altGroup": 1, "someCustomField": {"x": 1}},
            {"name": "audio", "renderGroup": 1, "packaging": "cmaf", "isLive": True, "initData": "AAAAHGZ0",
             "role": "audio", "codec": "mp4a.40.5", "samplerate": 48000, "channelConfig": "2",
             "bitrate": 67071},
        ],
    }  # fmt: skip
    parsed = Catalog.parse(json.dumps(example))
    assert parsed.version == 1 and parsed.tracks[0].codec == "avc1.640028"


def mutate(catalog: Catalog, index: int, **changes: Any) -> bytes:
    obj = json.loads(catalog.to_json())
    for key, value in changes.items():
        if value is ...:
            obj["tracks"][index].pop(key)
        else:
            obj["tracks"][index][key] = value
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("index", "key"),
    [
        (0, "name"), (0, "packaging"), (0, "isLive"), (0, "codec"), (0, "bitrate"), (0, "initData"),
        (1, "samplerate"), (1, "channelConfig"), (1, "codec"), (1, "bitrate"),
    ],
)  # fmt: skip
def test_required_track_fields(catalog: Catalog, index: int, key: str) -> None:
    with pytest.raises(CatalogError, match=key):
        Catalog.parse(mutate(catalog, index, **{key: ...}))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("name", 5), ("name", ""), ("isLive", "yes"), ("width", -1), ("width", 1.5), ("width", True),
        ("bitrate", "800k"), ("framerate", 0), ("framerate", "30"), ("initData", "not base64!"),
        ("initData", 12), ("depends", "360p"), ("eventType", "x.y"), ("trackDuration", 1000),
    ],
)  # fmt: skip
def test_bad_field_values(catalog: Catalog, key: str, value: object) -> None:
    with pytest.raises(CatalogError):
        Catalog.parse(mutate(catalog, 0, **{key: value}))


@pytest.mark.parametrize(
    "payload",
    [
        b"", b"{", b"\xff\xfe", b"[]", b"null", b'{"tracks": []}', b'{"version": true, "tracks": []}',
        b'{"version": "draft-01"}', b'{"version": "draft-01", "tracks": {}}',
        b'{"version": "draft-01", "tracks": [1]}', b'{"version": "draft-01", "tracks": [], "isComplete": 1}',
        b'{"version": "draft-01", "tracks": [], "generatedAt": -5}',
        b'{"version": "draft-01", "generatedAt": 1, "deltaUpdate": [{"op": "remove", "tracks": []}]}',
        b'{"version": "draft-01", "tracks": [{"name": "t", "packaging": "eventtimeline", "isLive": true}]}',
    ],
)  # fmt: skip
def test_bad_catalogs(payload: bytes) -> None:
    with pytest.raises(CatalogError):
        Catalog.parse(payload)


def test_duplicate_names_rejected(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="duplicate"):
        Catalog.parse(mutate(catalog, 1, name="360p"))
    # the same name in another namespace is another track
    Catalog.parse(mutate(catalog, 1, name="360p", namespace="other"))


def test_build_validates(video_fmp4: bytes) -> None:
    with pytest.raises(CatalogError):
        Catalog.build([CatalogTrack(name="x", role="video")])
    video = init_of(video_fmp4)
    track = CatalogTrack.from_init("v", video, bitrate=1)
    with pytest.raises(CatalogError, match="duplicate"):
        Catalog.build([track, track])


def test_catalog_error_is_media_error() -> None:
    assert issubclass(CatalogError, MediaError)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=8,
)
track_keys = st.sampled_from(
    ["name", "packaging", "isLive", "role", "codec", "bitrate", "width", "height", "framerate", "samplerate",
     "channelConfig", "initData", "depends", "eventType", "trackDuration", "namespace", "altGroup"]
)  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["version", "tracks", "generatedAt", "isComplete", "x"]), json_values
    )
)
def test_random_roots_only_raise_catalog_errors(root: dict[str, object]) -> None:
    try:
        Catalog.parse(json.dumps(root))
    except CatalogError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.lists(st.dictionaries(track_keys, json_values), max_size=3))
def test_random_tracks_only_raise_catalog_errors(tracks: list[dict[str, object]]) -> None:
    try:
        parsed = Catalog.parse(json.dumps({"version": "draft-01", "tracks": tracks}))
    except CatalogError:
        return
    assert Catalog.parse(parsed.to_json()) == parsed  # whatever parses, round-trips


def delta(*ops: dict[str, object], generated_at: int = 7) -> bytes:
    return json.dumps({"generatedAt": generated_at, "deltaUpdate": list(ops)}).encode()


def test_delta_updates_apply_in_order(catalog: Catalog) -> None:
    update = delta(
        {"op": "update", "tracks": [{"name": "360p", "bitrate": 700_000}]},
        {"op": "clone", "tracks": [{"parentName": "360p", "name": "180p", "width": 320, "height": 180}]},
        {"op": "add", "tracks": [{"name": "captions", "packaging": "eventtimeline", "isLive": True,
                                  "eventType": "org.example.captions"}]},
        {"op": "remove", "tracks": [{"name": "audio"}]},
    )  # fmt: skip
    assert Catalog.parse_update(catalog.to_json(), None) == catalog
    after = Catalog.parse_update(update, catalog)
    assert [t.name for t in after.tracks] == ["360p", "180p", "captions"]
    assert after.generated_at == 7 and after.version == catalog.version
    assert after.track("360p").bitrate == 700_000  # type: ignore[union-attr]
    clone = after.track("180p")
    assert clone is not None and (clone.width, clone.height, clone.bitrate) == (320, 180, 700_000)
    assert clone.init_data == catalog.tracks[0].init_data  # inherited from the parent
    with pytest.raises(CatalogError, match="needs the catalog"):
        Catalog.parse(update)


@pytest.mark.parametrize(
    "payload",
    [
        delta({"op": "remove", "tracks": [{"name": "nope"}]}),
        delta({"op": "remove", "tracks": [{"name": "audio", "bitrate": 1}]}),
        delta({"op": "add", "tracks": [{"name": "audio", "packaging": "loc", "isLive": True}]}),
        delta({"op": "clone", "tracks": [{"name": "x"}]}),
        delta({"op": "clone", "tracks": [{"parentName": "360p"}]}),
        delta({"op": "update", "tracks": [{"parentName": "360p", "name": "renamed"}]}),
        delta({"op": "update", "tracks": [{"name": "360p", "width": "wide"}]}),
        delta({"op": "rename", "tracks": [{"name": "360p"}]}),
        delta({"op": "add", "tracks": "x"}),
        delta({"op": "add", "tracks": [5]}),
        json.dumps({"generatedAt": 1, "deltaUpdate": []}).encode(),
        json.dumps({"deltaUpdate": [{"op": "remove", "tracks": [{"name": "audio"}]}]}).encode(),
        json.dumps({"version": "draft-01", "generatedAt": 1,
                    "deltaUpdate": [{"op": "remove", "tracks": [{"name": "audio"}]}]}).encode(),
    ],
)  # fmt: skip
def test_bad_delta_updates(catalog: Catalog, payload: bytes) -> None:
    with pytest.raises(CatalogError):
        Catalog.parse_update(payload, catalog)


def test_delta_without_base_catalog() -> None:
    with pytest.raises(CatalogError, match="without a preceding"):
        Catalog.parse_update(delta({"op": "remove", "tracks": [{"name": "a"}]}), None)


delta_ops = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "clone", "update", "x"]),
     "tracks": st.lists(st.dictionaries(st.sampled_from(["name", "parentName", "namespace", "packaging", "isLive",
                                                          "eventType", "bitrate"]), json_values), max_size=2)}
)  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(st.lists(delta_ops, max_size=3), json_values)
def test_random_deltas_only_raise_catalog_errors(
    ops: list[dict[str, object]], generated_at: object
) -> None:
    base = Catalog.build([CatalogTrack(name="e", packaging="eventtimeline", event_type="x.y")])
    try:
        after = Catalog.parse_update(
            json.dumps({"generatedAt": generated_at, "deltaUpdate": ops}), base
        )
    except CatalogError:
        return
    assert Catalog.parse(after.to_json()) == after


def test_init_data_list_form_round_trips(catalog: Catalog) -> None:
    obj = json.loads(catalog.to_json(init_data_list=True))
    assert list(obj)[-1] == "initDataList"  # MSF: after the tracks array
    assert all("initData" not in t and "initRef" in t for t in obj["tracks"])
    parsed = Catalog.parse(json.dumps(obj))
    for before, after in zip(catalog.tracks, parsed.tracks, strict=True):
        assert after.init_data == before.init_data and after.init_ref is not None


@pytest.mark.parametrize(
    "extra",
    [
        {"initDataList": "x"},
        {"initDataList": [{"id": "a", "type": "inline"}]},
        {"initDataList": [{"id": "a", "type": "zip", "data": ""}]},
        {
            "initDataList": [
                {"id": "a", "type": "inline", "data": ""},
                {"id": "a", "type": "inline", "data": ""},
            ]
        },
        {"initDataList": [{"id": "other", "type": "inline", "data": ""}]},
        {},
    ],
)
def test_bad_init_data_lists(catalog: Catalog, extra: dict[str, object]) -> None:
    obj = json.loads(catalog.to_json(init_data_list=True))
    obj.pop("initDataList")
    obj.update(extra)
    with pytest.raises(CatalogError):
        Catalog.parse(json.dumps(obj))
