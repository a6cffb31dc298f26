"""The on-demand ``timeline`` of a catalog track (MSF explicit media timeline records, inline)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from media.catalog import Catalog, CatalogTrack
from media.errors import CatalogError
from media.fmp4 import InitSegment, split_fmp4


@pytest.fixture
def live(video_fmp4: bytes, audio_fmp4: bytes) -> Catalog:
    video, audio = split_fmp4(video_fmp4)[0], split_fmp4(audio_fmp4)[0]
    assert isinstance(video, InitSegment) and isinstance(audio, InitSegment)
    return Catalog.build(
        [
            CatalogTrack.from_init("360p", video, bitrate=800_000, framerate=30, alt_group=1),
            CatalogTrack.from_init("audio", audio, bitrate=128_000),
        ]
    )


def on_demand(live: Catalog) -> Catalog:
    timeline = ((0, (0, 0), 0), (2000, (1, 0), 0), (4000, (2, 0), 0))
    return Catalog.build(
        [replace(t, is_live=False, track_duration=5000, timeline=timeline) for t in live.tracks],
        is_complete=True,
    )


def test_live_catalogs_have_no_timeline_and_serialize_as_before(live: Catalog) -> None:
    obj = live.to_json_obj()
    assert all("timeline" not in t for t in obj["tracks"])
    assert Catalog.parse(live.to_json()) == live


def test_timeline_round_trips_as_msf_records(live: Catalog) -> None:
    catalog = on_demand(live)
    obj = json.loads(catalog.to_json())
    assert obj["tracks"][0]["timeline"] == [[0, [0, 0], 0], [2000, [1, 0], 0], [4000, [2, 0], 0]]
    assert obj["tracks"][0]["isLive"] is False and obj["tracks"][0]["trackDuration"] == 5000
    parsed = Catalog.parse(catalog.to_json())
    assert parsed == catalog
    assert parsed.tracks[0].timeline == ((0, (0, 0), 0), (2000, (1, 0), 0), (4000, (2, 0), 0))


def test_integral_floats_are_accepted(live: Catalog) -> None:
    obj = on_demand(live).to_json_obj()
    obj["tracks"][0]["timeline"] = [[0.0, [0, 0], 0], [2000.0, [1.0, 0], 0]]
    track = Catalog.parse(json.dumps(obj)).tracks[0]
    assert track.timeline == ((0, (0, 0), 0), (2000, (1, 0), 0))


@pytest.mark.parametrize(
    "timeline",
    [
        {"0": 1},
        [[0, 0, 0]],
        [[0, [0], 0]],
        [[0, [0, 0]]],
        [[-1, [0, 0], 0]],
        [[0.5, [0, 0], 0]],
        [["0", [0, 0], 0]],
        [[0, [0, True], 0]],
        [[0, [1, 0], 0], [2000, [1, 0], 0]],  # group ids must increase
        [[2000, [0, 0], 0], [0, [1, 0], 0]],  # time must not go back
    ],
)
def test_bad_timelines_are_catalog_errors(live: Catalog, timeline: Any) -> None:
    obj = on_demand(live).to_json_obj()
    obj["tracks"][1]["timeline"] = timeline
    with pytest.raises(CatalogError, match=r"tracks\[1\]\.timeline"):
        Catalog.parse(json.dumps(obj))
