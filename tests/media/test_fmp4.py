"""Splitting real ffmpeg CMAF output: init/fragments, timing, keyframes, codecs, malformed input."""

from __future__ import annotations

import random
import re
import struct
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.errors import MalformedBox, MediaError, TruncatedStream, UnexpectedBox, UnsupportedMedia
from media.fmp4 import Fmp4Splitter, Fragment, InitSegment, is_sync_sample, parse_object, split_fmp4
from tests.media.conftest import FFMPEG


def top_level(data: bytes) -> list[tuple[str, int, int]]:
    out, pos = [], 0
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        out.append((kind.decode(), pos, size))
        pos += size
    return out


def feed_in_chunks(
    data: bytes, rng: random.Random, max_chunk: int = 4096, *, split_tracks: bool = False
) -> list[InitSegment | Fragment]:
    splitter = Fmp4Splitter(split_tracks=split_tracks)
    items: list[InitSegment | Fragment] = []
    pos = 0
    while pos < len(data):
        n = rng.randint(1, max_chunk)
        items.extend(splitter.feed(data[pos : pos + n]))
        pos += n
    splitter.close()
    return items


def test_video_init_and_fragments(video_fmp4: bytes) -> None:
    items = split_fmp4(video_fmp4)
    init, fragments = items[0], items[1:]
    assert isinstance(init, InitSegment)
    assert all(isinstance(f, Fragment) for f in fragments)
    track = init.track
    assert (track.track_id, track.handler, track.role) == (1, "vide", "video")
    assert track.codec == "avc1.64001e"  # High profile, level 3.0 for 640x360
    assert (track.width, track.height) == (640, 360)
    assert init.data == video_fmp4[: len(init.data)]
    assert [b[0] for b in top_level(init.data)] == ["ftyp", "moov"]
    assert "cmfc" in init.compatible_brands
    # 4 s at 30 fps in 500 ms chunks: 8 chunks of 15 frames, contiguous decode times.
    assert len(fragments) == 8
    assert all(isinstance(f, Fragment) and f.sample_count == 15 for f in fragments)
    t = 0
    for f in fragments:
        assert isinstance(f, Fragment)
        assert f.base_media_decode_time == t
        assert f.duration_seconds == pytest.approx(0.5)
        t = f.end_time
    assert sum(f.sample_count for f in fragments if isinstance(f, Fragment)) == 120


def test_keyframes_every_two_seconds(video_fmp4: bytes) -> None:
    fragments = [i for i in split_fmp4(video_fmp4) if isinstance(i, Fragment)]
    starts = [f.start_seconds for f in fragments if f.keyframe]
    assert starts == [0.0, 2.0]
    assert [f.keyframe for f in fragments] == [True, False, False, False] * 2


def test_chunks_are_exact_byte_ranges(video_fmp4: bytes) -> None:
    items = split_fmp4(video_fmp4)
    joined = b"".join(i.data for i in items)
    # Everything but the trailing mfra index (dropped) is kept, byte for byte, in order.
    boxes = top_level(video_fmp4)
    assert boxes[-1][0] == "mfra"
    assert joined == video_fmp4[: boxes[-1][1]]
    for f in items[1:]:
        assert [b[0] for b in top_level(f.data)] == ["prft", "moof", "mdat"]


def test_prft_gives_wallclock(video_fmp4: bytes) -> None:
    fragments = [i for i in split_fmp4(video_fmp4) if isinstance(i, Fragment)]
    assert all(f.prft is not None for f in fragments)
    clocks = [f.wallclock for f in fragments]
    assert all(c is not None and abs(c - time.time()) < 3600 for c in clocks)
    assert clocks == sorted(clocks)


@pytest.mark.parametrize("seed", range(6))
def test_random_chunk_sizes_give_identical_items(video_fmp4: bytes, seed: int) -> None:
    whole = split_fmp4(video_fmp4)
    rng = random.Random(seed)
    assert feed_in_chunks(video_fmp4, rng, max_chunk=rng.choice([7, 300, 20000])) == whole


def test_byte_by_byte_init_and_first_fragment(video_fmp4: bytes) -> None:
    items = split_fmp4(video_fmp4)
    upto = len(items[0].data) + len(items[1].data)
    splitter = Fmp4Splitter()
    got: list[InitSegment | Fragment] = []
    for i in range(upto):
        got.extend(splitter.feed(video_fmp4[i : i + 1]))
    assert got == items[:2]
    assert splitter.statistics().buffered == 0


def test_never_buffers_more_than_one_fragment(video_fmp4: bytes) -> None:
    largest = max(len(i.data) for i in split_fmp4(video_fmp4))
    splitter = Fmp4Splitter()
    for pos in range(0, len(video_fmp4), 1000):
        splitter.feed(video_fmp4[pos : pos + 1000])
        assert splitter.statistics().buffered < largest + 1000
    stats = splitter.statistics()
    assert (stats.init_segments, stats.fragments, stats.keyframes) == (1, 8, 2)


def test_audio_track_info(audio_fmp4: bytes) -> None:
    items = split_fmp4(audio_fmp4)
    assert isinstance(items[0], InitSegment)
    track = items[0].track
    assert (track.handler, track.codec, track.sample_rate, track.channel_count, track.timescale) == (
        "soun", "mp4a.40.2", 48000, 2, 48000,
    )  # fmt: skip
    fragments = [i for i in items if isinstance(i, Fragment)]
    assert all(f.keyframe for f in fragments)  # every AAC frame is a sync sample
    assert sum(f.duration for f in fragments) == pytest.approx(4 * 48000, abs=1024)


def test_hevc_codec_string(hevc_fmp4: bytes) -> None:
    init = split_fmp4(hevc_fmp4)[0]
    assert isinstance(init, InitSegment)
    # Main profile (1), compatibility flags reversed (6), Main tier level, constraint bytes.
    assert init.track.codec.startswith("hvc1.1.6.L")
    assert (init.track.width, init.track.height) == (192, 108)


def test_opus_codec_string(opus_fmp4: bytes) -> None:
    init = split_fmp4(opus_fmp4)[0]
    assert isinstance(init, InitSegment)
    assert (init.track.codec, init.track.sample_rate, init.track.channel_count) == (
        "opus",
        48000,
        2,
    )


def test_sync_sample_flags() -> None:
    assert is_sync_sample(0x02000000)  # depends on none
    assert is_sync_sample(0x00000000)  # unknown dependency, sync
    assert not is_sync_sample(0x01010000)  # depends on others, non-sync
    assert not is_sync_sample(0x02010000)  # non-sync bit wins
    assert not is_sync_sample(0x01000000)  # depends on others


# -- malformed input ------------------------------------------------------------------------------


def test_truncated_stream_raises_on_close(video_fmp4: bytes) -> None:
    splitter = Fmp4Splitter()
    splitter.feed(video_fmp4[:-500])
    with pytest.raises(TruncatedStream):
        splitter.close()


def test_moof_without_mdat_at_end(video_fmp4: bytes) -> None:
    boxes = top_level(video_fmp4)
    mdat = next(b for b in boxes if b[0] == "mdat")
    splitter = Fmp4Splitter()
    splitter.feed(video_fmp4[: mdat[1]])
    with pytest.raises(TruncatedStream, match="moof without its mdat"):
        splitter.close()


def test_moof_before_init(video_fmp4: bytes) -> None:
    boxes = top_level(video_fmp4)
    moof = next(b for b in boxes if b[0] == "moof")
    with pytest.raises(UnexpectedBox, match="before the init segment"):
        Fmp4Splitter().feed(video_fmp4[moof[1] :])


def test_mdat_without_moof(video_fmp4: bytes) -> None:
    boxes = top_level(video_fmp4)
    init_end = boxes[2][1]
    mdat = next(b for b in boxes if b[0] == "mdat")
    data = video_fmp4[:init_end] + video_fmp4[mdat[1] : mdat[1] + mdat[2]]
    with pytest.raises(UnexpectedBox, match="mdat without"):
        Fmp4Splitter().feed(data)


def test_two_moofs_in_a_row(video_fmp4: bytes) -> None:
    boxes = top_level(video_fmp4)
    moof = next(b for b in boxes if b[0] == "moof")
    data = video_fmp4[: moof[1] + moof[2]] + video_fmp4[moof[1] : moof[1] + moof[2]]
    with pytest.raises(UnexpectedBox, match="moof without mdat"):
        Fmp4Splitter().feed(data)


@pytest.mark.parametrize("size", [0, 3, 7])
def test_bad_box_size(size: int) -> None:
    with pytest.raises(MalformedBox):
        Fmp4Splitter().feed(struct.pack(">I4s", size, b"ftyp") + b"\x00" * 16)


def test_garbage_box_type() -> None:
    with pytest.raises(MalformedBox, match="invalid box type"):
        Fmp4Splitter().feed(b"\x00\x00\x00\x10\x01\x02\x03\x04" + b"\x00" * 8)


def test_fragment_size_limit(video_fmp4: bytes) -> None:
    with pytest.raises(MalformedBox, match="exceed"):
        Fmp4Splitter(max_fragment_size=10_000).feed(video_fmp4)


def test_sample_data_outside_mdat(video_fmp4: bytes) -> None:
    boxes = top_level(video_fmp4)
    moof = next(b for b in boxes if b[0] == "moof")
    raw = bytearray(video_fmp4)
    trun = raw.index(b"trun", moof[1])
    # trun: size(4) 'trun' version/flags(4) sample_count(4) data_offset(4)
    struct.pack_into(">i", raw, trun + 12, 100_000_000)
    with pytest.raises(MalformedBox, match="outside mdat"):
        split_fmp4(bytes(raw))


def test_trun_count_larger_than_its_entries(video_fmp4: bytes) -> None:
    raw = bytearray(video_fmp4)
    trun = raw.index(b"trun")
    struct.pack_into(">I", raw, trun + 8, 0x7FFFFFFF)
    with pytest.raises(MalformedBox, match="trun declares"):
        split_fmp4(bytes(raw))


def test_moov_without_tracks() -> None:
    data = struct.pack(">I4s", 8, b"moov")
    with pytest.raises(MalformedBox, match="no track"):
        split_fmp4(data)


def test_multi_track_fragment_is_unsupported_by_default(muxed_fmp4: bytes) -> None:
    with pytest.raises(UnsupportedMedia):
        Fmp4Splitter().feed(muxed_fmp4)


def test_muxed_stream_split_into_single_track_cmaf(muxed_fmp4: bytes, tmp_path: Path) -> None:
    items = feed_in_chunks(muxed_fmp4, random.Random(7), split_tracks=True)
    assert items == split_fmp4(muxed_fmp4, split_tracks=True)
    tracks: dict[int, list[InitSegment | Fragment]] = {}
    for item in items:
        if isinstance(item, InitSegment):
            assert len(item.tracks) == 1
            tracks[item.track.track_id] = [item]
        else:
            tracks[item.track_id].append(item)
    assert len(tracks) == 2
    video, audio = tracks[1], tracks[2]
    assert isinstance(video[0], InitSegment) and video[0].track.role == "video"
    assert isinstance(audio[0], InitSegment) and audio[0].track.codec == "mp4a.40.2"
    video_frags = [f for f in video[1:] if isinstance(f, Fragment)]
    assert sum(f.sample_count for f in video_frags) == 90
    assert [f.start_seconds for f in video_frags if f.keyframe] == [0.0, 1.0, 2.0]
    for name, seq in (("video", video), ("audio", audio)):
        for f in seq[1:]:
            assert [b[0] for b in top_level(f.data)] == ["moof", "mdat"]
        path = tmp_path / f"{name}.mp4"
        path.write_bytes(b"".join(i.data for i in seq))
        run = subprocess.run(
            [FFMPEG, "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-", "-progress", "pipe:1"],
            capture_output=True, timeout=60, check=True,
        )  # fmt: skip
        assert run.stderr == b""
        if name == "video":
            assert re.findall(rb"^frame=(\d+)", run.stdout, re.M)[-1] == b"90"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_streams_only_raise_media_errors(video_fmp4: bytes, data: st.DataObject) -> None:
    raw = bytearray(video_fmp4[:20000])
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    splitter = Fmp4Splitter()
    try:
        splitter.feed(bytes(raw[:cut]))
        splitter.feed(bytes(raw[cut:]))
        splitter.close()
    except MediaError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_media_errors(blob: bytes) -> None:
    splitter = Fmp4Splitter()
    try:
        splitter.feed(blob)
        splitter.close()
    except MediaError:
        pass


def test_errors_are_terminal(video_fmp4: bytes) -> None:
    splitter = Fmp4Splitter()
    with pytest.raises(MalformedBox) as first:
        splitter.feed(b"\x00\x00\x00\x04ftyp")
    with pytest.raises(MalformedBox) as again:
        splitter.feed(video_fmp4)  # a valid stream cannot resume a broken one
    assert again.value is first.value
    with pytest.raises(MalformedBox):
        splitter.close()
    assert splitter.statistics().buffered == 0


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_init_segments_only_raise_media_errors(
    audio_fmp4: bytes, hevc_fmp4: bytes, opus_fmp4: bytes, data: st.DataObject
) -> None:
    source = data.draw(st.sampled_from([audio_fmp4, hevc_fmp4, opus_fmp4]))
    init = split_fmp4(source)[0]
    raw = bytearray(init.data)
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        split_fmp4(bytes(raw))
    except MediaError:
        pass


def test_parse_object_accepts_cmsf_objects(video_fmp4: bytes) -> None:
    items = split_fmp4(video_fmp4)
    init, frags = items[0], [f for f in items[1:] if isinstance(f, Fragment)]
    assert isinstance(init, InitSegment)
    for f in frags:
        assert parse_object(f.data, init, group_start=f.keyframe) == (f,)
    # an object MAY hold several successive chunks
    assert parse_object(frags[4].data + frags[5].data, init, group_start=True) == (
        frags[4],
        frags[5],
    )


def test_parse_object_refusals(video_fmp4: bytes, muxed_fmp4: bytes) -> None:
    items = split_fmp4(video_fmp4)
    init, frags = items[0], [f for f in items[1:] if isinstance(f, Fragment)]
    assert isinstance(init, InitSegment)
    with pytest.raises(UnexpectedBox, match="SAP"):
        parse_object(frags[1].data, init, group_start=True)
    with pytest.raises(UnexpectedBox, match="init segment"):
        parse_object(init.data + frags[0].data, init)
    with pytest.raises(MalformedBox, match="empty"):
        parse_object(b"", init)
    with pytest.raises(TruncatedStream):
        parse_object(frags[0].data[:-10], init)
    with pytest.raises(MalformedBox):
        parse_object(b"\x00" * 64, init)
    with pytest.raises(MalformedBox, match="decode order"):
        parse_object(frags[1].data + frags[0].data, init)
    muxed = split_fmp4(muxed_fmp4, split_tracks=True)
    muxed_init = split_fmp4(muxed_fmp4[: muxed_fmp4.index(b"moof") - 4])[0]
    assert isinstance(muxed_init, InitSegment)
    video, audio = (
        next(f for f in muxed if isinstance(f, Fragment) and f.track_id == t) for t in (1, 2)
    )
    with pytest.raises(UnsupportedMedia, match="single track"):
        parse_object(video.data + audio.data, muxed_init)


def test_late_joiner_splitter_starts_with_a_known_init(video_fmp4: bytes) -> None:
    items = split_fmp4(video_fmp4)
    init = items[0]
    assert isinstance(init, InitSegment)
    tail = b"".join(i.data for i in items[5:])  # from the second group on, no header in band
    splitter = Fmp4Splitter(init=init)
    assert splitter.feed(tail) == items[5:]
    splitter.close()
