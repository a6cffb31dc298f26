"""BroadcastPackager: catalog once every track has its init, objects with shared group ids."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from media.catalog import Catalog
from media.errors import MediaError, UnsupportedMedia
from media.ffmpeg import test_pattern_transcoder
from media.fmp4 import Fragment, InitSegment, parse_fragment, shift_fragment, split_fmp4
from media.packager import BroadcastPackager, CatalogUpdate, ObjectReady, TrackPlan
from tests.media.conftest import FFMPEG


def items(data: bytes) -> tuple[InitSegment, list[Fragment]]:
    out = split_fmp4(data)
    assert isinstance(out[0], InitSegment)
    return out[0], [f for f in out[1:] if isinstance(f, Fragment)]


PLANS = [
    TrackPlan("audio", 128_000, priority=1),
    TrackPlan("video", 800_000, framerate=30, alt_group=1, priority=2),
]


def test_catalog_after_every_init_then_aligned_objects(
    video_fmp4: bytes, audio_fmp4: bytes
) -> None:
    vinit, vfrags = items(video_fmp4)
    ainit, afrags = items(audio_fmp4)
    packager = BroadcastPackager(
        PLANS, namespace="stream/o/lv", first_group_id=10, clock=lambda: 12.5
    )
    assert packager.push("video", vinit) == []
    assert packager.catalog is None
    events = packager.push("audio", ainit)
    assert len(events) == 1 and isinstance(events[0], CatalogUpdate)
    catalog = events[0].catalog
    assert catalog.generated_at == 12_500 and packager.catalog == catalog
    assert [(t.name, t.namespace, t.priority, t.max_group_duration) for t in catalog.tracks] == [
        ("audio", "stream/o/lv", 1, 2000),
        ("video", "stream/o/lv", 2, 2000),
    ]
    assert Catalog.parse(catalog.to_json()) == catalog
    assert packager.push("audio", ainit) == []  # same init again: no new catalog

    placed: dict[str, list[tuple[int, int, float]]] = {"audio": [], "video": []}
    for name, frags in (("video", vfrags), ("audio", afrags)):
        for f in frags:
            for event in packager.push(name, f):
                assert isinstance(event, ObjectReady) and event.track == name
                o = event.object
                placed[name].append((o.group_id, o.object_id, o.fragment.start_seconds))
    video_groups = {g: t for g, i, t in placed["video"] if i == 0}
    audio_groups = {g: t for g, i, t in placed["audio"] if i == 0}
    assert video_groups == {10: 0.0, 11: 2.0}
    assert set(audio_groups) == {10, 11}
    assert packager.next_group_id() == 12

    ended = packager.end()
    assert ended is not None and ended.is_complete and not any(t.is_live for t in ended.tracks)


def test_rejects_unknown_tracks_and_muxed_inits(video_fmp4: bytes, muxed_fmp4: bytes) -> None:
    packager = BroadcastPackager(PLANS)
    vinit, _ = items(video_fmp4)
    with pytest.raises(MediaError):
        packager.push("nope", vinit)
    head = muxed_fmp4[: muxed_fmp4.index(b"moof") - 4]  # ftyp + moov, before the first fragment
    muxed = split_fmp4(head)[0]
    assert isinstance(muxed, InitSegment) and len(muxed.tracks) == 2
    with pytest.raises(UnsupportedMedia):
        packager.push("video", muxed)
    with pytest.raises(ValueError):
        BroadcastPackager([TrackPlan("a", 1), TrackPlan("a", 2)])
    assert BroadcastPackager(PLANS).end() is None


async def test_transcoder_packager_end_to_end() -> None:
    tc = test_pattern_transcoder(width=320, height=180, duration=4, realtime=False)
    async with tc:
        packager = tc.packager(namespace="stream/org/lv")
        events = [e async for name, item in tc for e in packager.push(name, item)]
    updates = [e for e in events if isinstance(e, CatalogUpdate)]
    objects = [e for e in events if isinstance(e, ObjectReady)]
    assert len(updates) == 1
    catalog = updates[0].catalog
    assert {t.name: t.codec for t in catalog.tracks} == {
        "audio": "mp4a.40.2",
        "video": "avc1.64000d",
    }
    assert catalog.track("video", "stream/org/lv").framerate == 30  # type: ignore[union-attr]
    starts = {(o.track, o.object.group_id) for o in objects if o.object.starts_group}
    assert starts == {("video", 0), ("video", 1), ("audio", 0), ("audio", 1)}
    assert tc.catalog(namespace="stream/org/lv", generated_at=catalog.generated_at) == catalog


def test_resume_continues_timeline_and_group_ids(video_fmp4: bytes, audio_fmp4: bytes) -> None:
    vinit, vfrags = items(video_fmp4)
    ainit, afrags = items(audio_fmp4)

    def run(packager: BroadcastPackager) -> list[ObjectReady]:
        packager.push("video", vinit)
        packager.push("audio", ainit)
        out = [e for f in vfrags for e in packager.push("video", f)]
        return out + [e for f in afrags for e in packager.push("audio", f)]

    first = BroadcastPackager(PLANS)
    before = run(first)
    resume = first.resume_point()
    assert resume.timeline_offset == pytest.approx(4.0, abs=0.05)  # both 4 s tracks ended there
    second = BroadcastPackager(PLANS, resume=resume)
    after = run(second)  # the restarted encoder's timeline starts again at 0
    for track in ("video", "audio"):
        old = [e.object for e in before if e.track == track]
        new = [e.object for e in after if e.track == track]
        assert new[0].group_id > old[-1].group_id
        assert new[0].fragment.start_seconds == pytest.approx(resume.timeline_offset, abs=1e-3)
        times = [o.fragment.base_media_decode_time for o in old + new]
        assert times == sorted(times)
        # the shifted chunk bytes say the same thing as the shifted Fragment
        reparsed = parse_fragment(new[0].payload, vinit if track == "video" else ainit)
        assert reparsed == new[0].fragment
    video_ids = {e.object.group_id for e in after if e.track == "video" and e.object.starts_group}
    audio_ids = {e.object.group_id for e in after if e.track == "audio" and e.object.starts_group}
    assert video_ids == audio_ids == {2, 3}


def test_shifted_fragments_still_decode(video_fmp4: bytes, tmp_path: Path) -> None:
    init, frags = items(video_fmp4)
    shifted = [shift_fragment(f, 10 * f.timescale) for f in frags]
    assert [f.start_seconds for f in shifted] == [10 + f.start_seconds for f in frags]
    assert all(
        s.wallclock == pytest.approx(f.wallclock) for s, f in zip(shifted, frags, strict=True)
    )
    path = tmp_path / "shifted.mp4"
    path.write_bytes(init.data + b"".join(f.data for f in shifted))
    run = subprocess.run(
        [FFMPEG, "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-"],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    assert run.stderr == b""
    assert shift_fragment(frags[0], 0) is frags[0]
    with pytest.raises(ValueError):
        shift_fragment(frags[0], -1)
