"""``prft`` media times across timeline shifts: ffmpeg's negative first AAC time, and field limits."""

from __future__ import annotations

import time

import pytest

from media import BroadcastPackager, Fragment, InitSegment, ObjectReady, ResumePoint, TrackPlan
from media._boxes import iter_boxes, make_box
from media.ffmpeg import test_pattern_transcoder
from media.fmp4 import parse_fragment, shift_fragment

pytestmark = pytest.mark.timeout(60)


async def first_audio() -> tuple[InitSegment, list[Fragment]]:
    """The first two AAC chunks of a real ffmpeg ladder (with ``-write_prft wallclock``)."""
    tc = test_pattern_transcoder(width=160, height=90, duration=2, realtime=False)
    init: InitSegment | None = None
    found: list[Fragment] = []
    async with tc:
        async for rendition, item in tc:
            if rendition != "audio":
                continue
            if isinstance(item, InitSegment):
                init = item
            elif isinstance(item, Fragment):
                found.append(item)
                if len(found) == 2:
                    break
    assert init is not None
    return init, found


def prft_boxes(data: bytes) -> list[bytes]:
    return [b.raw() for b in iter_boxes(data) if b.type == "prft"]


async def test_negative_first_aac_prft_survives_a_resume() -> None:
    init, (first, second) = await first_audio()
    # ffmpeg writes the AAC priming pts (-1024) into the unsigned 64-bit field
    assert first.prft is not None and second.prft is not None
    assert first.prft.media_time < 0 < second.prft.media_time
    raw = prft_boxes(first.data)[0]
    assert raw[8] == 1 and int.from_bytes(raw[-8:], "big") == first.prft.media_time + (1 << 64)
    assert first.wallclock == pytest.approx(time.time(), abs=30)  # not ~1e14 s off

    ticks = 10 * first.timescale
    moved = shift_fragment(first, ticks)
    assert moved.prft is not None and moved.prft.media_time == first.prft.media_time + ticks > 0
    assert moved.wallclock == pytest.approx(first.wallclock)
    assert parse_fragment(moved.data, init) == moved  # the box says what the Fragment says
    assert len(moved.data) == len(first.data)

    # what a resumed ladder does with the first chunk of its new encoder
    packager = BroadcastPackager([TrackPlan("audio", 128_000)], resume=ResumePoint(10.0, 5))
    packager.push("audio", init)
    placed = packager.push("audio", first)
    assert len(placed) == 1 and isinstance(placed[0], ObjectReady)
    obj = placed[0].object
    assert obj.group_id >= 5 and obj.fragment.prft is not None
    assert obj.fragment.prft.media_time == first.prft.media_time + ticks
    assert parse_fragment(obj.payload, init) == obj.fragment


async def test_prft_fields_stay_consistent_at_their_limits() -> None:
    init, (first, _) = await first_audio()
    assert first.prft is not None
    # a small shift leaves the time negative: still two's complement in the v1 field
    small = shift_fragment(first, 24)
    assert small.prft is not None and small.prft.media_time == first.prft.media_time + 24 < 0
    assert parse_fragment(small.data, init) == small

    # a version 0 prft whose moved time no longer fits 32 bits is dropped with its box
    v1 = prft_boxes(first.data)[0]
    ntp = v1[16:24]
    v0 = make_box(
        "prft", b"\x00\x00\x00\x00" + v1[12:16] + ntp + (4_000_000_000).to_bytes(4, "big")
    )
    data = v0 + first.data.replace(v1, b"")
    frag = parse_fragment(data, init)
    assert frag.prft is not None and frag.prft.media_time == 4_000_000_000
    fits = shift_fragment(frag, 1_000)
    assert fits.prft is not None and fits.prft.media_time == 4_000_001_000
    assert parse_fragment(fits.data, init) == fits
    over = shift_fragment(frag, 1 << 30)
    assert over.prft is None and prft_boxes(over.data) == []
    assert over.base_media_decode_time == frag.base_media_decode_time + (1 << 30)
    assert parse_fragment(over.data, init) == over
