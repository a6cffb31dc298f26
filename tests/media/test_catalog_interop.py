"""Our catalog against an independent MSF implementation (aiomoqt.media.catalog), both ways."""

from __future__ import annotations

import base64

import pytest
from aiomoqt.media import catalog as msf

from media.catalog import Catalog, CatalogTrack
from media.fmp4 import InitSegment, split_fmp4

pytestmark = pytest.mark.interop


def test_aiomoqt_reads_our_catalog(video_fmp4: bytes, audio_fmp4: bytes) -> None:
    inits = [split_fmp4(d)[0] for d in (video_fmp4, audio_fmp4)]
    assert all(isinstance(i, InitSegment) for i in inits)
    ours = Catalog.build(
        [
            CatalogTrack.from_init("360p", inits[0], bitrate=800_000, framerate=30, alt_group=1),  # type: ignore[arg-type]
            CatalogTrack.from_init("audio", inits[1], bitrate=128_000),  # type: ignore[arg-type]
        ],
        generated_at=1,
    )
    for form in (False, True):
        theirs = msf.Catalog.from_json(ours.to_json(init_data_list=form).decode())
        assert theirs.validate() == []
        video = theirs.find("360p")
        assert video is not None and (video.codec, video.width, video.packaging) == (
            "avc1.64001e",
            640,
            "cmaf",
        )
        audio = theirs.find("audio")
        assert audio is not None and (audio.samplerate, audio.channelConfig) == (48000, "2")
        if form:
            assert theirs.resolve_init(video) == inits[0].data  # type: ignore[union-attr]
        else:
            assert base64.b64decode(video.extra["initData"]) == inits[0].data  # type: ignore[union-attr]


def test_we_read_aiomoqt_catalog(video_fmp4: bytes) -> None:
    init = split_fmp4(video_fmp4)[0]
    theirs = msf.Catalog(
        generatedAt=5,
        tracks=[msf.CatalogTrack(name="video", packaging="cmaf", isLive=True, role="video", codec="avc1.64001e",
                                 width=640, height=360, bitrate=800_000, initRef="v0")],
        initDataList=[msf.InitData.from_bytes("v0", init.data)],
    )  # fmt: skip
    ours = Catalog.parse(theirs.to_json())
    track = ours.track("video")
    assert track is not None and track.init_data == init.data and track.init_ref == "v0"


@pytest.mark.parametrize("fixture", ["video_fmp4", "audio_fmp4", "hevc_fmp4", "opus_fmp4"])
def test_codec_strings_match_aiomoqt(fixture: str, request: pytest.FixtureRequest) -> None:
    from aiomoqt.media.cmaf import chunk_decode_time, init_codec_string, init_timescale

    items = split_fmp4(request.getfixturevalue(fixture))
    init = items[0]
    assert isinstance(init, InitSegment)
    theirs = init_codec_string(init.data)
    assert (
        theirs is not None and init.track.codec.lower() == theirs.lower()
    )  # RFC 6381 hex: any case
    assert init.track.timescale == init_timescale(init.data)
    for fragment in items[1:]:
        assert fragment.base_media_decode_time == chunk_decode_time(fragment.data)  # type: ignore[union-attr]
