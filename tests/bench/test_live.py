"""The stamped CMAF clip the benchmarks publish: valid for the origin's ingest, stamped, looping."""

from __future__ import annotations

import time
from pathlib import Path

from bench._live import make_clip, namespace_of, sent_at
from media import Catalog, parse_object


def test_looping_objects_are_valid_cmaf_with_increasing_decode_times(tmp_path: Path) -> None:
    clip = make_clip(tmp_path, bitrate=3e5, fps=10, group_seconds=0.5, size="160x90")
    assert clip.per_group == 5 and len(clip.fragments) == 10
    decode_times = []
    for seq in range(25):  # two and a half loops of the clip
        now = 1_800_000_000.0 + seq / 7
        payload = clip.payload(seq, now=now)
        (fragment,) = parse_object(payload, clip.init, group_start=seq % clip.per_group == 0)
        assert fragment.keyframe == (seq % clip.per_group == 0)
        decode_times.append(fragment.base_media_decode_time)
        stamped = sent_at(payload)
        assert stamped is not None and abs(stamped - now) < 1e-6
        assert fragment.prft is not None and fragment.prft.media_time == decode_times[-1]
    assert decode_times == sorted(set(decode_times))
    assert 2e5 < clip.bitrate < 6e5


def test_clip_is_encoded_once_per_parameter_set(tmp_path: Path) -> None:
    make_clip(tmp_path, bitrate=3e5, fps=10, group_seconds=0.5, size="160x90")
    (path,) = tmp_path.glob("clip-*.mp4")
    before = path.stat().st_mtime_ns
    time.sleep(0.01)
    make_clip(tmp_path, bitrate=3e5, fps=10, group_seconds=0.5, size="160x90")
    assert path.stat().st_mtime_ns == before
    make_clip(tmp_path, bitrate=3e5, fps=10, group_seconds=1.0, size="160x90")
    assert len(list(tmp_path.glob("clip-*.mp4"))) == 2


def test_catalog_declares_the_video_track_with_its_header(tmp_path: Path) -> None:
    clip = make_clip(tmp_path, bitrate=3e5, fps=10, group_seconds=0.5, size="160x90")
    catalog = Catalog.parse_update(clip.catalog(), None)
    (track,) = catalog.tracks
    assert track.name == "video" and track.packaging == "cmaf"
    assert track.init_data and track.codec and track.codec.startswith("avc1.")


def test_unstamped_payloads_have_no_send_time() -> None:
    assert sent_at(b"") is None
    assert sent_at(b"\x00\x00\x00\x20moof" + bytes(24)) is None


def test_namespace_of_splits_on_slashes() -> None:
    assert namespace_of("stream/org_dev/lv_a") == (b"stream", b"org_dev", b"lv_a")
