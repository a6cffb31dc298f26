"""Merging single-track CMAF headers and re-tagging chunks into one playable file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from clutchcall.streams._cmaf import CmafError, merge_init_segments, retag_chunk
from media import split_fmp4
from media.ffmpeg import TestPatternSource, encoder_command, ffmpeg_exe
from media.fmp4 import Fragment, InitSegment
from tests.clutchcall.dataplane import decode


@pytest.fixture(scope="module")
def tracks() -> tuple[dict[int, InitSegment], list[Fragment]]:
    """Two seconds of testsrc + tone as fMP4, cut into single-track CMAF."""
    source = TestPatternSource(width=320, height=180, duration=2.0, realtime=False)
    cmd = encoder_command(ffmpeg_exe(), source, "pipe:1", container="fmp4", chunk_seconds=0.5)
    data = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    items = split_fmp4(data, split_tracks=True)
    inits = {i.track.track_id: i for i in items if isinstance(i, InitSegment)}
    fragments = [i for i in items if isinstance(i, Fragment)]
    assert len(inits) == 2 and fragments
    return inits, fragments


def test_merged_header_and_retagged_chunks_play(
    tracks: tuple[dict[int, InitSegment], list[Fragment]], tmp_path: Path
) -> None:
    inits, fragments = tracks
    by_role = {i.track.role: (tid, i) for tid, i in inits.items()}
    video_id, video = by_role["video"]
    audio_id, audio = by_role["audio"]
    new_ids = {video_id: 7, audio_id: 3}  # ids unlike the encoder's
    merged = merge_init_segments([video.data, audio.data], [7, 3])
    header = split_fmp4(merged)[0]
    assert isinstance(header, InitSegment)
    assert {(t.track_id, t.role) for t in header.tracks} == {(7, "video"), (3, "audio")}
    chunks = [retag_chunk(f.data, new_ids[f.track_id]) for f in fragments]
    assert all(len(c) == len(f.data) for c, f in zip(chunks, fragments, strict=True))
    parsed = [i for i in split_fmp4(merged + b"".join(chunks)) if isinstance(i, Fragment)]
    assert [p.track_id for p in parsed] == [new_ids[f.track_id] for f in fragments]
    out = tmp_path / "merged.mp4"
    out.write_bytes(merged + b"".join(chunks))
    decoded = decode(out)
    assert decoded.errors == ""
    assert decoded.frames == 60  # 2 s at 30 fps


def test_bad_input_is_a_typed_error(tracks: tuple[dict[int, InitSegment], list[Fragment]]) -> None:
    inits, fragments = tracks
    one = next(iter(inits.values()))
    with pytest.raises(CmafError):
        merge_init_segments([b"\x00\x00\x00\x10moovtrunc"], [1])
    with pytest.raises(CmafError):
        merge_init_segments([b"\x00\x00\x00\x08free"], [1])  # no moov
    with pytest.raises(ValueError):
        merge_init_segments([one.data, one.data], [1, 1])
    with pytest.raises(CmafError):
        retag_chunk(b"\x00\x00\x00\x08mdat", 1)
    with pytest.raises(CmafError):
        retag_chunk(fragments[0].data[:20], 1)
