"""bench.ingest end to end, briefly: RTMP (three rungs and one) and MoQT through origin + POP."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench._ingest_rtmp import _coded_keyframe
from bench.ingest import ONE, THREE, format_results, run_moqt, run_rtmp


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"\x17\x01\x00\x00\x00", True),  # AVC keyframe, NAL units
        (b"\x17\x00\x00\x00\x00", False),  # AVC sequence header
        (b"\x27\x01\x00\x00\x00", False),  # AVC inter frame
        (b"\x91hvc1", True),  # enhanced RTMP: keyframe, CodedFrames
        (b"\x93hvc1", True),  # enhanced RTMP: keyframe, CodedFramesX
        (b"\x92hvc1", False),  # enhanced RTMP: SequenceEnd
        (b"\x90hvc1", False),  # enhanced RTMP: SequenceStart
        (b"\xa1hvc1", False),  # enhanced RTMP: inter frame
        (b"\x17", False),
    ],
)
def test_coded_keyframe_tells_pictures_from_sequence_headers(
    payload: bytes, expected: bool
) -> None:
    assert _coded_keyframe(payload) is expected


@pytest.mark.e2e
@pytest.mark.latency  # three transcodes on a budget: runs alone
@pytest.mark.timeout(90)
def test_rtmp_latency_per_rendition_and_transcode_cpu(tmp_path: Path) -> None:
    three = run_rtmp(THREE, duration=3.0, workdir=tmp_path)
    one = run_rtmp(ONE, duration=3.0, workdir=tmp_path)
    for result, names in ((three, ["720p", "480p", "360p", "audio"]), (one, ["720p", "audio"])):
        assert not result.notes, result.notes
        assert [f.track for f in result.renditions] == names
        assert result.outputs == len(names)
        for f in result.renditions:
            assert f.objects >= 4, f  # 0.5 s chunks over 3 s
            # The oldest frame waited a whole chunk (0.5 s) more than the newest.
            assert 0 < f.newest_p50_ms < f.oldest_p50_ms <= f.oldest_p99_ms < 3000, f
            assert 0 <= f.transcode_p50_ms < 2000 and 0 <= f.delivery_p50_ms < 1000, f
        video = result.renditions[0]
        assert 400 < video.oldest_p50_ms - video.newest_p50_ms < 600
        # The capture model holds: once warm, tags leave the encoder right after capture.
        assert 0 <= result.encoder_send_p50_ms < 100
        assert result.ffmpeg_cores > 0 and result.origin_cores > 0 and result.pop_cores > 0
    # Two more video renditions cost the transcoder more CPU.
    assert three.ffmpeg_cores > one.ffmpeg_cores
    table = format_results([three, one])
    assert "per extra video rendition" in table and "| rtmp | 3 rung(s) | 480p |" in table


@pytest.mark.e2e
@pytest.mark.latency
@pytest.mark.timeout(90)
def test_moqt_ingest_latency_through_the_pop(tmp_path: Path) -> None:
    result = run_moqt(duration=3.0, workdir=tmp_path)
    assert not result.notes, result.notes
    (video,) = result.renditions
    assert video.objects >= 20  # frames of the groups after the first
    assert 0 < video.delivery_p50_ms <= video.delivery_p99_ms < 1000
    assert math.isnan(result.ffmpeg_cores)  # passthrough: nothing transcoded
