"""The origin strips the negative-time ``prft`` ffmpeg writes on the first AAC chunk."""

from __future__ import annotations

import pytest

from media import (
    BroadcastPackager,
    Fragment,
    InitSegment,
    MediaError,
    ObjectReady,
    ResumePoint,
    TrackPlan,
    parse_object,
)
from media.ffmpeg import test_pattern_transcoder
from origin.rtmp_ingest import without_wrapped_prft

pytestmark = pytest.mark.timeout(60)


async def first_audio() -> tuple[InitSegment, Fragment, Fragment]:
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
    return init, found[0], found[1]


def packager(init: InitSegment) -> BroadcastPackager:
    p = BroadcastPackager([TrackPlan("audio", 128_000)], resume=ResumePoint(10.0, 5))
    p.push("audio", init)
    return p


async def test_negative_prft_is_dropped_and_the_chunk_stays_valid() -> None:
    init, first, second = await first_audio()
    assert first.prft is not None and first.prft.media_time >= 1 << 63
    with pytest.raises(MediaError):
        packager(init).push("audio", first)  # what a resumed ladder would hit
    fixed = without_wrapped_prft(first)
    assert fixed.prft is None and len(fixed.data) < len(first.data)
    assert parse_object(fixed.data, init, group_start=True)[0].base_media_decode_time == 0
    placed = packager(init).push("audio", fixed)
    assert len(placed) == 1 and isinstance(placed[0], ObjectReady)
    assert placed[0].object.group_id >= 5
    assert without_wrapped_prft(second) is second  # positive media times are kept
